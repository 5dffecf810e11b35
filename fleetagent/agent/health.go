package agent

import (
	"sort"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
)

// Health statuses of the agent as a whole (ComponentHealth.status).
const (
	StatusRunning  = "Running"  // the collector's pipelines are ready
	StatusStarting = "Starting" // a collector is starting (or stopping for a swap)
	StatusStandIn  = "StandIn"  // the collector cannot run; the supervisor answers the probes
)

// health turns the tracker's snapshot into the AgentHealth the agent
// reports: one ComponentHealth per pipeline ("pipeline:logs"), holding its
// components ("receiver:file_log"), and one for the extensions. Errors are
// scrubbed of the config's secrets.
func health(s fleetstatus.Snapshot, now time.Time, secrets []string) *protobufs.ComponentHealth {
	top := &protobufs.ComponentHealth{
		StatusTimeUnixNano: uint64(now.UnixNano()),
		ComponentHealthMap: map[string]*protobufs.ComponentHealth{},
	}
	allHealthy := true
	keys := make([]string, 0, len(s.Components))
	for k := range s.Components {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		st := s.Components[k]
		ch := &protobufs.ComponentHealth{
			Healthy:            st.Healthy,
			Status:             st.Status,
			LastError:          Scrub(st.Err, secrets),
			StatusTimeUnixNano: unixNano(st.Reported),
			StartTimeUnixNano:  unixNano(st.Since),
		}
		if !st.Healthy {
			allHealthy = false
			if top.LastError == "" && ch.LastError != "" {
				top.LastError = k + ": " + ch.LastError
			}
		}
		groups := st.Pipelines
		if len(groups) == 0 {
			groups = []string{"extensions"}
		} else {
			for i, p := range groups {
				groups[i] = "pipeline:" + p
			}
		}
		for _, g := range groups {
			parent := top.ComponentHealthMap[g]
			if parent == nil {
				parent = &protobufs.ComponentHealth{Healthy: true, Status: "StatusOK", ComponentHealthMap: map[string]*protobufs.ComponentHealth{}}
				top.ComponentHealthMap[g] = parent
			}
			parent.ComponentHealthMap[k] = ch
			if !ch.Healthy {
				parent.Healthy = false
				parent.Status = ch.Status
				if parent.LastError == "" {
					parent.LastError = ch.LastError
				}
			}
		}
	}
	switch {
	case s.Running:
		top.Status = StatusRunning
		top.Healthy = allHealthy
		top.StartTimeUnixNano = unixNano(s.Started)
	case s.Down != "":
		top.Status = StatusStandIn
		top.LastError = Scrub(s.Down, secrets)
	default:
		top.Status = StatusStarting
	}
	return top
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}
