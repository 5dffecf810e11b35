package collectorconfig_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// A sidecar collector that cannot start must not hold its pod's app back:
// the kubelet starts the app only once it has seen the native sidecar
// running, so a collector that exits at start would keep the app in Init
// for good. These tests run the real binary as the injector runs it
// (FARGATE_OTEL_SIDECAR=true) with configs that Render accepts but the
// collector cannot start.

// startSidecar runs the collector as the injector's sidecar, without
// waiting for it to be healthy.
func (f *fixture) startSidecar() *collectortest.Process {
	f.t.Helper()
	env := append(append([]string(nil), f.env...),
		sidecarconfig.SidecarEnvVar+"=true",
		sidecarconfig.HealthEndpointEnvVar+"="+f.cfg.HealthCheckEndpoint)
	return collectortest.Start(f.t, collectortest.Options{Config: f.config, Env: env, RunFiles: f.runFiles})
}

// awaitLog polls the collector's log until it holds every part, failing if
// the process exits first.
func awaitLog(t *testing.T, p *collectortest.Process, what string, parts ...string) {
	t.Helper()
	pollUntil(t, 60*time.Second, what, func() bool {
		if p.Exited() {
			t.Fatalf("the collector exited while waiting for %s:\n%s", what, collectortest.Tail(p.Logs(), 30))
		}
		logs := p.Logs()
		for _, s := range parts {
			if !strings.Contains(logs, s) {
				return false
			}
		}
		return true
	})
}

// awaitHealth polls the health endpoint until a 200 answer holds want.
func awaitHealth(t *testing.T, url, want string) {
	t.Helper()
	pollUntil(t, 60*time.Second, "a 200 at "+url+" saying "+want, func() bool { return strings.Contains(health(url), want) })
}

// health is the body of a 200 answer at the health endpoint ("" otherwise).
func health(url string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// couldNotRun is the start of the line the sidecar logs for each failure.
const couldNotRun = "The collector could not run. This process stays up"

// TestASidecarWithABadExporterSettingStaysUp: an exporter setting that only
// the collector checks (as from a user's exporters ConfigMap). The sidecar
// stays up through repeated failures, says what failed and what to do,
// answers the liveness probe, and exits 0 on SIGTERM; without the sidecar
// mode the same binary exits non-zero, and `validate` still fails in it.
func TestASidecarWithABadExporterSettingStaysUp(t *testing.T) {
	f := newFixture(t, func(c *sidecarconfig.Config) {
		gw := sidecarconfig.GatewayExporter("otel-gateway.example:4317")
		gw.Config["compression"] = "brotli"
		c.Exporters = []sidecarconfig.Exporter{gw}
		c.KubeletStats.Disabled = true
	})

	// The plain collector gives up at once.
	plain := exec.Command(collectortest.Binary(t), "--config=env:FARGATE_OTEL_CONFIG")
	plain.Env = append(append(os.Environ(), f.env...), "FARGATE_OTEL_CONFIG="+string(f.config))
	if out, err := plain.CombinedOutput(); err == nil || !strings.Contains(string(out), "brotli") {
		t.Fatalf("without the sidecar mode the collector should exit with an error about brotli; got %v:\n%s", err, collectortest.Tail(string(out), 10))
	}
	// validate keeps failing in a sidecar's environment.
	env := append(append([]string(nil), f.env...), sidecarconfig.SidecarEnvVar+"=true")
	if err := collectortest.Validate(t, f.config, env, f.runFiles); err == nil {
		t.Fatal("validate accepted the broken exporter in sidecar mode")
	}

	p := f.startSidecar()
	// Two failed starts in a row: the process outlived the first.
	awaitLog(t, p, "a second start", `"attempt":2`, couldNotRun, "brotli", "exporters ConfigMap")
	// The liveness probe gets a 200 that says why.
	awaitHealth(t, f.health, "brotli")
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatalf("SIGTERM while the collector is down: want exit 0, got %v", err)
	}
}

// TestASidecarWhosePortIsTakenStartsOnceItIsFree: the app listens on the
// OTLP port without declaring it. The sidecar says which address is taken
// and what to do, and starts the collector on a later attempt once the
// port is free (no restart of the container), which then works.
func TestASidecarWhosePortIsTakenStartsOnceItIsFree(t *testing.T) {
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	app, err := net.Listen("tcp", f.cfg.OTLP.GRPCEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := f.startSidecar()
	awaitLog(t, p, "the port conflict explained", couldNotRun,
		"Another process of the pod already listens on "+f.cfg.OTLP.GRPCEndpoint)
	awaitHealth(t, f.health, "address already in use")

	_ = app.Close()
	// The real health_check, not the stand-in, answers once it runs.
	awaitHealth(t, f.health, "Server available")
	sendSpan(t, f.cfg.OTLP.GRPCEndpoint, "after the port was freed")
	pollUntil(t, 30*time.Second, "the span at the sink", func() bool { return len(f.sink.Spans()) > 0 })
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

// TestASidecarWaitsForAMissingCAFile: kubelet_stats' CA (in mode proxy a
// ConfigMap the injector publishes, mounted as an optional volume) is not
// there yet. The sidecar waits for it and starts once it appears: kubelet
// stats then arrive.
func TestASidecarWaitsForAMissingCAFile(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "nodeproxy", "ca.crt")
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.Signals = []sidecarconfig.Signal{sidecarconfig.Metrics}
		c.KubeletStats.CAFile = caFile
	})
	p := f.startSidecar()
	awaitLog(t, p, "the missing CA explained", couldNotRun, "The file "+caFile+" is missing")

	if err := os.MkdirAll(filepath.Dir(caFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, f.kubelet.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "kubelet stats at the sink", func() bool {
		for _, m := range f.sink.Metrics() {
			if strings.HasPrefix(m.Name, "k8s.pod.") {
				return true
			}
		}
		return false
	})
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

// sendSpan sends one span over OTLP/gRPC as an app in the pod does.
func sendSpan(t *testing.T, endpoint, name string) {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName(name)
	sp.SetTraceID(pcommon.TraceID{0xc, 1})
	sp.SetSpanID(pcommon.SpanID{0xd, 1})
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatalf("export span: %v", err)
	}
}
