package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/server"
	"github.com/fargate-otel/fargate-otel/gateway/gatewaytest"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
)

// TestGatewayReplicas runs the real gateway binary (FARGATE_OTEL_GATEWAY_BIN,
// else `make gateway`) with the chart's config and the fleet env the chart
// gives it, against a fleet server replica with the cluster's live settings
// and real TokenReviews: two replicas of the gateway's service account are
// listed as gateways (identity, health, one config hash for both, the
// config as the chart wrote it, the last export), and are sent no settings;
// the same binary with a sidecar's token says it is a gateway and is
// refused as forged_kind, and its collector runs on regardless.
func TestGatewayReplicas(t *testing.T) {
	if _, err := gatewaytest.BinaryPath(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.liveConfigMap(map[string]string{desired.KeyLogLevel: "warn", desired.KeyExporters: exportersYAML("otlp_grpc/gateway", "gw.obs.svc:4317")})
	r := e.startReplica("fargate-otel-fleet-0", false)
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	cfg, err := gatewaytest.RenderConfig(e.ctx, map[string]any{
		"gateway":      map[string]any{"tailSampling": map[string]any{"enabled": false}},
		"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": sink.Addr(), "insecure": true}},
	})
	if err != nil {
		t.Fatal(err)
	}

	// run starts the gateway as pod p of the chart's Deployment would run.
	run := func(i int, p *corev1.Pod) *gatewaytest.Replica {
		t.Helper()
		dir := filepath.Join(t.TempDir(), p.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		token, ca := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(token, []byte(e.token(p, server.Audience)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ca, e.ca.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := gatewaytest.Start(gatewaytest.Options{Config: cfg, IP: fmt.Sprintf("127.0.0.%d", i+2), Name: p.Name, Env: []string{
			"FARGATE_OTEL_FLEET_ENDPOINT=" + r.url(),
			"FARGATE_OTEL_FLEET_TOKEN_FILE=" + token,
			"FARGATE_OTEL_FLEET_CA_FILE=" + ca,
			"FARGATE_OTEL_FLEET_HEARTBEAT=1s",
			"POD_UID=" + string(p.UID), "POD_NAMESPACE=" + p.Namespace, "NODE_NAME=" + p.Spec.NodeName,
		}}, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			g.Kill()
			if t.Failed() {
				t.Logf("%s, last lines of its log:\n%s", p.Name, gatewaytest.Tail(g.Logs(), 30))
			}
		})
		hctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		defer cancel()
		if err := g.WaitHealthy(hctx); err != nil {
			t.Fatal(err)
		}
		return g
	}

	var pods []*corev1.Pod
	var gws []*gatewaytest.Replica
	for i := range 2 {
		p := e.pod(releaseNS, fmt.Sprintf("fargate-otel-gateway-6f7c9-%d", i), "fargate-otel-gateway")
		pods = append(pods, p)
		gws = append(gws, run(i, p))
	}
	var listed []api.Agent
	for i, p := range pods {
		listed = append(listed, waitAgent(t, r, string(p.UID), p.Name+" is listed healthy with its config", func(a api.Agent) error {
			if !a.Connected || !a.Health.Reported || !a.Health.Healthy || a.ConfigHash == "" {
				return fmt.Errorf("not yet: connected %v, health %+v, config hash %q\n%s", a.Connected, a.Health, a.ConfigHash, gatewaytest.Tail(gws[i].Logs(), 5))
			}
			return nil
		}))
	}
	for i, a := range listed {
		p := pods[i]
		if a.Kind != api.KindGateway || a.Namespace != releaseNS || a.Pod != p.Name || a.Node != p.Spec.NodeName || a.CollectorVersion != version {
			t.Errorf("%s listed as %+v", p.Name, a)
		}
		if a.RemoteConfig.Desired != "" || a.RemoteConfig.Status == "APPLIED" || len(a.Stale) != 0 || a.InjectorVersion != "" {
			t.Errorf("%s: remote config %+v, stale %v, injector %q: a gateway is sent nothing and runs the chart's config", p.Name, a.RemoteConfig, a.Stale, a.InjectorVersion)
		}
	}
	// Each replica has its own POD_IP; the config the chart wrote is one.
	if listed[0].ConfigHash != listed[1].ConfigHash {
		t.Errorf("config hashes %q and %q: replicas of one config report one hash", listed[0].ConfigHash, listed[1].ConfigHash)
	}
	eff, err := r.client.EffectiveConfig(e.ctx, listed[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(eff, "${env:POD_IP}") || strings.Contains(eff, "127.0.0.2") || strings.Contains(eff, "fleet_status") {
		t.Errorf("effective config: want the chart's config as written (env references, no fleet_status):\n%s", eff)
	}
	// With the cluster's live settings in place, nothing was sent: only
	// gateways connected to this replica.
	if n := r.metric(t, "fargate_otel_fleet_configs_sent_total"); n != 0 {
		t.Errorf("%v live settings sent to gateways", n)
	}

	// A log through replica 0 reaches the destination, and the replica's
	// figures say when it exported last.
	conn, err := grpc.NewClient(gws[0].OTLP(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("through the gateway")
	sent := time.Now()
	if _, err := plogotlp.NewGRPCClient(conn).Export(e.ctx, plogotlp.NewExportRequestFromLogs(ld)); err != nil {
		t.Fatal(err)
	}
	waitAgent(t, r, listed[0].UID, "the figures show the last log export", func(a api.Agent) error {
		if at := a.Figures.LastExport["logs"]; at.Before(sent.Add(-time.Second)) {
			return fmt.Errorf("last exports %v (sink has %d logs)", a.Figures.LastExport, sink.LogCount())
		}
		return nil
	})

	// The same binary with a sidecar's token: it says gateway, its token
	// says sidecar. Refused, and the collector runs on.
	before := r.metric(t, `fargate_otel_fleet_agents_refused_total{reason="forged_kind"}`)
	sidecarPod := e.pod("shop", "cart-0", "cart")
	forged := run(2, sidecarPod)
	polltest.Until(t, 30*time.Second, "the gateway with a sidecar's token is refused as forged_kind", func() error {
		if n := r.metric(t, `fargate_otel_fleet_agents_refused_total{reason="forged_kind"}`); n <= before {
			return fmt.Errorf("forged_kind refusals %v\n%s", n, gatewaytest.Tail(forged.Logs(), 5))
		}
		return nil
	})
	if !strings.Contains(forged.Logs(), `which is a sidecar`) {
		t.Errorf("the refused gateway's log does not say why:\n%s", gatewaytest.Tail(forged.Logs(), 10))
	}
	if _, err := agentIn(mustFleet(t, r), string(sidecarPod.UID)); err == nil {
		t.Errorf("a refused gateway is listed")
	}
	hctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := forged.WaitHealthy(hctx); err != nil {
		t.Errorf("the refused gateway's collector: %v", err)
	}
	// Only gateways are listed (the refused one is not).
	f, err := r.client.Fleet(e.ctx, api.Filter{Kind: api.KindSidecar})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Agents) != 0 {
		t.Errorf("sidecars listed: %+v", f.Agents)
	}

	// A replica that stops says goodbye: the server sees it disconnect.
	if err := gws[1].Stop(30 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("stop %s: %v", pods[1].Name, err)
	}
	waitAgent(t, r, listed[1].UID, "a stopped replica is disconnected", func(a api.Agent) error {
		if a.Connected {
			return errors.New("still connected")
		}
		return nil
	})
	if f := mustFleet(t, r); !slices.ContainsFunc(f.Agents, func(a api.Agent) bool { return a.UID == listed[0].UID && a.Connected }) {
		t.Errorf("replica 0 is not connected any more: %+v", f.Agents)
	}
}
