package agent

import (
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
)

func TestHealth(t *testing.T) {
	now := time.Unix(2000, 0)
	ok := func(pipes ...string) fleetstatus.State {
		return fleetstatus.State{Status: "StatusOK", Healthy: true, Since: now, Reported: now, Pipelines: pipes}
	}
	snap := fleetstatus.Snapshot{Running: true, Started: now, Components: map[string]fleetstatus.State{
		"receiver:file_log":          ok("logs"),
		"receiver:otlp":              ok("logs", "traces"),
		"exporter:otlp_grpc/gateway": {Status: "StatusRecoverableError", Err: "rpc error: token s3cr3t-value refused", Pipelines: []string{"traces"}},
		"extension:file_storage":     ok(),
	}}
	h := health(snap, now, []string{"s3cr3t-value"})
	if h.Status != StatusRunning || h.Healthy {
		t.Fatalf("a running collector with a failing exporter: status %s healthy %v", h.Status, h.Healthy)
	}
	if h.LastError != "exporter:otlp_grpc/gateway: rpc error: token [redacted] refused" {
		t.Errorf("last error %q", h.LastError)
	}
	logs, traces := h.ComponentHealthMap["pipeline:logs"], h.ComponentHealthMap["pipeline:traces"]
	if !logs.GetHealthy() || len(logs.ComponentHealthMap) != 2 {
		t.Errorf("pipeline:logs %v", logs)
	}
	if traces.GetHealthy() || traces.ComponentHealthMap["receiver:otlp"] == nil || traces.Status != "StatusRecoverableError" {
		t.Errorf("pipeline:traces %v", traces)
	}
	if ext := h.ComponentHealthMap["extensions"]; ext.ComponentHealthMap["extension:file_storage"].GetStartTimeUnixNano() != uint64(now.UnixNano()) {
		t.Errorf("extensions %v", ext)
	}

	down := health(fleetstatus.Snapshot{Down: "listen tcp 127.0.0.1:4317: bind: address already in use", Components: map[string]fleetstatus.State{}}, now, nil)
	if down.Status != StatusStandIn || down.Healthy || down.LastError == "" {
		t.Errorf("stand-in: %v", down)
	}
	if starting := health(fleetstatus.Snapshot{Components: map[string]fleetstatus.State{}}, now, nil); starting.Status != StatusStarting || starting.Healthy {
		t.Errorf("starting: %v", starting)
	}
}
