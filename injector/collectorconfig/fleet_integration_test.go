package collectorconfig_test

import (
	"bufio"
	"context"
	"crypto/sha1" // the WebSocket handshake's accept key (RFC 6455)
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/protobufs"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/internal/pki"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// The sidecar's fleet agent against a real OpAMP server (opamp-go's, over
// TLS, fleetserver_test.go), with the real binary run as the injector runs
// it: settings in FARGATE_OTEL_SETTINGS, FARGATE_OTEL_SIDECAR=true, the
// fleet env vars. Live settings swap the collector inside the process.

// startFleetSidecar runs the collector from the fixture's settings as a
// sidecar with extra env (the fleet's).
func (f *fixture) startFleetSidecar(extra ...string) *collectortest.Process {
	f.t.Helper()
	settings, err := sidecarconfig.Encode(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	env := append(append(slices.Clone(f.env),
		sidecarconfig.SidecarEnvVar+"=true",
		sidecarconfig.HealthEndpointEnvVar+"="+f.cfg.HealthCheckEndpoint), extra...)
	return collectortest.Start(f.t, collectortest.Options{Settings: settings, Env: env, RunFiles: f.runFiles})
}

func (f *fixture) podUID(t *testing.T) []byte {
	u, err := uuid.Parse(f.pod.uid)
	if err != nil {
		t.Fatal(err)
	}
	return u[:]
}

// writeCRI writes a container's log file as the wrapper lays it out.
func (f *fixture) writeCRI(t *testing.T, container string, lines ...string) {
	t.Helper()
	dir := filepath.Join(f.pods, f.pod.namespace+"_"+f.pod.name+"_"+f.pod.uid, container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " " + l + "\n")
	}
	fh, err := os.OpenFile(filepath.Join(dir, "0.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fh.Close() }()
	if _, err := fh.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func startSink(t *testing.T) *otlpsink.Sink {
	t.Helper()
	s, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func exporterTo(id, addr string) sidecarconfig.Exporter {
	e := sidecarconfig.GatewayExporter(addr)
	e.ID = id
	return e
}

func spansNamed(s *otlpsink.Sink, name string) int {
	n := 0
	for _, sp := range s.Spans() {
		if sp.Name == name {
			n++
		}
	}
	return n
}

// TestFleetAgentReports: identity, health, the effective config with its
// secrets redacted, and the figures reach the fleet server; the token is
// read again on a reconnect.
func TestFleetAgentReports(t *testing.T) {
	const literalSecret = "sk-live-0123456789abcdef"
	const envSecret = "from-a-kubernetes-secret-42"
	fs := startFleetServer(t, nil)
	dead := freeAddr(t)
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.KubeletStats.Disabled = true
		gw := c.Exporters[0]
		gw.Config["headers"] = map[string]any{"x-api-key": "${env:VENDOR_API_KEY}", "x-team-token": literalSecret}
		// Nobody listens there, and it does not retry: its logs fail.
		c.Exporters = append(c.Exporters, sidecarconfig.Exporter{ID: "otlp_grpc/dead", Signals: []sidecarconfig.Signal{sidecarconfig.Logs}, Config: map[string]any{
			"endpoint": dead, "tls": map[string]any{"insecure": true}, "timeout": "1s",
			"retry_on_failure": map[string]any{"enabled": false}, "sending_queue": map[string]any{"enabled": true},
		}})
	})
	// What file_log reads: two stdout and one stderr line of the app, and
	// the wrapper's report of lines it dropped.
	f.writeCRI(t, "app", "stdout F one", "stdout F two", "stderr F three",
		"stderr F fargate-otel-tee: 7 log lines were lost since 2026-12-03T15:04:05Z: the log file's queue was full")
	p := f.startFleetSidecar(append(fs.env(), "VENDOR_API_KEY="+envSecret)...)
	awaitHealth(t, f.health, "Server available")

	rendered, err := sidecarconfig.Render(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	hash := sidecarconfig.Hash(rendered)
	fs.await(30*time.Second, "the description, a healthy collector and the effective config", func() bool {
		return fs.desc != nil && fs.health.GetHealthy() && fs.effective != nil
	})
	fs.mu.Lock()
	desc, h, eff, uids, tokens := fs.desc, fs.health, fs.effective, fs.uids, slices.Clone(fs.tokens)
	fs.mu.Unlock()

	if !uids[string(f.podUID(t))] || len(uids) != 1 {
		t.Errorf("instance_uid: got %x, want the pod uid %s", keys(uids), f.pod.uid)
	}
	if len(tokens) == 0 || tokens[0] != "Bearer fleet-token-1" {
		t.Errorf("Authorization: %q", tokens)
	}
	for key, want := range map[string]string{
		"service.name": "fargate-otel-collector", "service.instance.id": f.pod.uid, "service.version": "0.1.0",
		"k8s.pod.name": f.pod.name, "k8s.pod.uid": f.pod.uid, "k8s.namespace.name": f.pod.namespace,
	} {
		if got := attr(desc.IdentifyingAttributes, key); got != want {
			t.Errorf("identifying %s = %q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]string{
		"k8s.node.name": f.pod.node, "k8s.cluster.name": clusterName,
		"fargate-otel.injector.version": "9.8.7", "fargate-otel.exporters.source": "configmap:exporters/sidecar.json",
		"fargate-otel.bootstrap.config_hash": hash, "fargate-otel.config_hash": hash,
	} {
		if got := attr(desc.NonIdentifyingAttributes, key); got != want {
			t.Errorf("non-identifying %s = %q, want %q", key, got, want)
		}
	}

	if h.Status != "Running" {
		t.Errorf("health status %q, want Running", h.Status)
	}
	logs := h.ComponentHealthMap["pipeline:logs"]
	if fl := logs.GetComponentHealthMap()["receiver:file_log"]; !fl.GetHealthy() || fl.GetStatus() != "StatusOK" || fl.GetStartTimeUnixNano() == 0 {
		t.Errorf("pipeline:logs/receiver:file_log health: %v", fl)
	}
	if _, ok := logs.GetComponentHealthMap()["exporter:otlp_grpc/gateway"]; !ok {
		t.Errorf("no health of the gateway exporter in the logs pipeline: %v", logs)
	}
	if ext := h.ComponentHealthMap["extensions"]; !ext.GetComponentHealthMap()["extension:file_storage"].GetHealthy() {
		t.Errorf("extensions' health: %v", ext)
	}

	body := string(eff.GetConfigMap().GetConfigMap()["collector.yaml"].GetBody())
	t.Logf("effective config:\n%s", body)
	for _, want := range []string{"x-api-key: ${env:VENDOR_API_KEY}", "x-team-token: '[redacted]'", "file_log:", "otlp_grpc/dead:"} {
		if !strings.Contains(body, want) {
			t.Errorf("the effective config lacks %q:\n%s", want, body)
		}
	}

	// Figures: totals since the start, every heartbeat.
	var figs map[string]any
	fs.await(30*time.Second, "figures with every line read and a failed export", func() bool {
		if len(fs.figures) == 0 {
			return false
		}
		figs = fs.figures[len(fs.figures)-1]
		read, _ := figs["linesRead"].(map[string]any)
		fails, _ := figs["exportFailures"].(map[string]any)
		last, _ := figs["lastExport"].(map[string]any)
		return read["app/stdout"] == 2.0 && read["app/stderr"] == 2.0 && fails["logs"].(float64) > 0 && last["logs"] != ""
	})
	t.Logf("figures: %v", figs)
	if d, _ := figs["wrapperDropped"].(map[string]any); d["app"] != 7.0 {
		t.Errorf("wrapperDropped: %v, want app: 7", figs["wrapperDropped"])
	}
	if _, ok := figs["queueBytes"].(float64); !ok {
		t.Errorf("queueBytes: %v", figs["queueBytes"])
	}
	if ts, _ := figs["time"].(string); ts == "" {
		t.Errorf("no time in the figures: %v", figs)
	}

	// The kubelet rotates the token: a reconnect sends the new one.
	fs.writeToken("fleet-token-2")
	fs.mu.Lock()
	for _, c := range fs.conns {
		_ = c.Disconnect()
	}
	fs.mu.Unlock()
	fs.await(30*time.Second, "a connection with the rotated token", func() bool {
		return slices.Contains(fs.tokens, "Bearer fleet-token-2")
	})

	// No secret in anything the agent sent, nor in the collector's log.
	all := fs.everything()
	for _, s := range []string{literalSecret, envSecret} {
		if strings.Contains(all, s) {
			t.Errorf("the agent sent the secret %q to the fleet server", s)
		}
		if strings.Contains(p.Logs(), s) {
			t.Errorf("the collector logged the secret %q", s)
		}
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

// TestFleetAgentReportsACollectorThatCannotRun: while the collector
// cannot start (the app holds its OTLP port), the agent reports it
// unhealthy with the error, and healthy once it runs.
func TestFleetAgentReportsACollectorThatCannotRun(t *testing.T) {
	fs := startFleetServer(t, nil)
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	app, err := net.Listen("tcp", f.cfg.OTLP.GRPCEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := f.startFleetSidecar(fs.env()...)
	fs.await(30*time.Second, "a stand-in health with the error", func() bool {
		return fs.health.GetStatus() == "StandIn" && !fs.health.GetHealthy() && strings.Contains(fs.health.GetLastError(), "address already in use")
	})
	_ = app.Close()
	fs.await(60*time.Second, "a running collector once the port is free", func() bool {
		return fs.health.GetStatus() == "Running" && fs.health.GetHealthy()
	})
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFleetLiveExportersSwapExactlyOnce: while the app writes numbered
// lines, the fleet moves the pod's logs to another exporter. The lines
// before the swap are at the first sink, those after at the second, each
// exactly once; the settings are kept on the logs volume, and a restart of
// the sidecar with the fleet server unreachable runs them.
func TestFleetLiveExportersSwapExactlyOnce(t *testing.T) {
	fs := startFleetServer(t, nil)
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	second := startSink(t)
	p := f.startFleetSidecar(fs.env()...)
	awaitHealth(t, f.health, "Server available")
	fs.await(30*time.Second, "a running collector", func() bool { return fs.health.GetStatus() == "Running" })

	const lines = 1500 // per stream
	a := startApp(t, f, lines, 500, "64Mi")
	pollUntil(t, 60*time.Second, "a third of the lines at the first sink", func() bool { return f.sink.LogCount() >= 2*lines/3 })

	// The gateway is down for a while: lines wait in its queue on disk
	// (the figures show it), which the new config does not send.
	f.sink.FailWith(status.Error(codes.Unavailable, "the gateway restarts"))
	fs.await(30*time.Second, "bytes queued on disk", func() bool {
		return len(fs.figures) > 0 && fs.figures[len(fs.figures)-1]["queueBytes"].(float64) > 0
	})
	over := sidecarconfig.Overrides{Exporters: []sidecarconfig.Exporter{exporterTo("otlp_grpc/second", second.Addr())}}
	hash := fs.push(over)
	fs.awaitStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING)
	// It comes back while the swap waits for its queue.
	f.sink.FailWith(nil)
	fs.awaitStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	atApplied := f.sink.LogCount()
	// The gateway's queue on disk was sent before the swap: the new config
	// has no exporter to send it.
	awaitLog(t, p, "the swap's drain", "the queues on disk of the exporters the next config drops are sent")

	a.wait(t, 2*time.Minute)
	files := readCRIFiles(t, a.logDir)
	pollUntil(t, 60*time.Second, "every line at one of the sinks", func() bool {
		return missingAtSinks(files, f.sink, second) == 0
	})
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}

	// Exactly once over both sinks, and a clean cut in the file's order:
	// every line at the first sink comes before every line at the second.
	index := map[string]int{}
	for i, l := range files {
		index[l.stream+" "+l.text] = i
	}
	seen := map[string]int{}
	lastFirst, firstSecond := -1, len(files)
	for _, s := range []struct {
		sink  *otlpsink.Sink
		first bool
	}{{f.sink, true}, {second, false}} {
		for _, r := range s.sink.Logs() {
			key := r.Attributes["log.iostream"].(string) + " " + r.Body
			i, ok := index[key]
			if !ok {
				t.Errorf("a record the app never wrote: %q", key)
				continue
			}
			seen[key]++
			if s.first {
				lastFirst = max(lastFirst, i)
			} else {
				firstSecond = min(firstSecond, i)
			}
		}
	}
	for key, n := range seen {
		if n > 1 {
			t.Errorf("%d times: %q", n, key)
		}
	}
	if len(seen) != len(files) {
		t.Errorf("%d of %d lines arrived", len(seen), len(files))
	}
	if lastFirst >= firstSecond {
		t.Errorf("the swap is not a clean cut: line %d reached the first sink, line %d the second", lastFirst, firstSecond)
	}
	if second.LogCount() == 0 || atApplied == 0 {
		t.Fatalf("sinks: %d lines at the first (%d when applied), %d at the second", f.sink.LogCount(), atApplied, second.LogCount())
	}
	t.Logf("%d lines: %d to the first exporter, %d to the second after the swap", len(files), f.sink.LogCount(), second.LogCount())

	// What the agent reports runs the new exporter.
	cfg, err := over.Apply(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := sidecarconfig.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	got := attr(fs.desc.NonIdentifyingAttributes, "fargate-otel.config_hash")
	effBody := string(fs.effective.GetConfigMap().GetConfigMap()["collector.yaml"].GetBody())
	fs.mu.Unlock()
	if got != sidecarconfig.Hash(rendered) {
		t.Errorf("config_hash after the swap: %s, want %s", got, sidecarconfig.Hash(rendered))
	}
	if !strings.Contains(effBody, "otlp_grpc/second") || strings.Contains(effBody, "otlp_grpc/gateway") {
		t.Errorf("effective config after the swap:\n%s", effBody)
	}
	saved, err := os.ReadFile(filepath.Join(f.state, "fleet", "overrides.json"))
	if err != nil {
		t.Fatalf("the applied live settings are not on the logs volume: %v", err)
	}
	body, _ := over.Encode()
	if string(saved) != string(body) {
		t.Errorf("saved live settings %s, want %s", saved, body)
	}

	// A restart of the container with the fleet server gone: the saved
	// settings run.
	fs.stop()
	env := fs.env()
	env[0] = "FARGATE_OTEL_FLEET_ENDPOINT=wss://" + freeAddr(t) + "/v1/opamp"
	p = f.startFleetSidecar(env...)
	awaitHealth(t, f.health, "Server available")
	f.writeCRI(t, "late", "stdout F after the restart")
	sendSpan(t, f.cfg.OTLP.GRPCEndpoint, "after the restart")
	pollUntil(t, 60*time.Second, "the late line and span at the second sink", func() bool {
		return spansNamed(second, "after the restart") == 1 && slices.ContainsFunc(second.Logs(), func(r otlpsink.LogRecord) bool { return r.Body == "after the restart" })
	})
	if spansNamed(f.sink, "after the restart") != 0 {
		t.Error("after the restart, the span went to the first exporter")
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

// sendMetric sends one gauge over OTLP/gRPC as an app in the pod does.
func sendMetric(t *testing.T, endpoint, name string) {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatalf("export metric: %v", err)
	}
}

func missingAtSinks(files []criLine, sinks ...*otlpsink.Sink) int {
	got := map[string]bool{}
	for _, s := range sinks {
		for _, r := range s.Logs() {
			stream, _ := r.Attributes["log.iostream"].(string)
			got[stream+" "+r.Body] = true
		}
	}
	n := 0
	for _, l := range files {
		if !got[l.stream+" "+l.text] {
			n++
		}
	}
	return n
}

// TestFleetBadLiveSettingsAreRolledBack: settings the collector refuses
// (an exporter setting only the collector checks) fail before anything
// changes; settings that validate but cannot start (a CA file that is not
// there) are rolled back. Both end FAILED with the error, and telemetry
// goes on with the last good config.
func TestFleetBadLiveSettingsAreRolledBack(t *testing.T) {
	fs := startFleetServer(t, nil)
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	second := startSink(t)
	p := f.startFleetSidecar(fs.env()...)
	awaitHealth(t, f.health, "Server available")
	fs.await(30*time.Second, "a running collector", func() bool { return fs.health.GetStatus() == "Running" })

	brotli := exporterTo("otlp_grpc/second", second.Addr())
	brotli.Config["compression"] = "brotli"
	hash := fs.push(sidecarconfig.Overrides{Exporters: []sidecarconfig.Exporter{brotli}})
	st := fs.awaitStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	if !strings.Contains(st.ErrorMessage, "brotli") {
		t.Errorf("FAILED without the reason: %q", st.ErrorMessage)
	}
	if strings.Contains(p.Logs(), "Swapping the collector") {
		t.Error("the collector was swapped for settings that do not validate")
	}

	missing := filepath.Join(t.TempDir(), "no-such-ca.crt")
	noCA := exporterTo("otlp_grpc/second", second.Addr())
	noCA.Config["tls"] = map[string]any{"ca_file": missing}
	hash = fs.push(sidecarconfig.Overrides{Exporters: []sidecarconfig.Exporter{noCA}})
	fs.awaitStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING)
	st = fs.awaitStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED)
	if !strings.Contains(st.ErrorMessage, missing) || !strings.Contains(st.ErrorMessage, "no such file") {
		t.Errorf("FAILED without the reason: %q", st.ErrorMessage)
	}
	awaitLog(t, p, "the rollback", "rolling back to the last good config")
	awaitHealth(t, f.health, "Server available")
	sendSpan(t, f.cfg.OTLP.GRPCEndpoint, "after the rollback")
	pollUntil(t, 30*time.Second, "the span at the first sink", func() bool { return spansNamed(f.sink, "after the rollback") == 1 })
	fs.await(30*time.Second, "a running collector again", func() bool { return fs.health.GetStatus() == "Running" && fs.health.GetHealthy() })
	if second.LogCount() > 0 || len(second.Spans()) > 0 {
		t.Error("the second sink got data from a config that failed")
	}
	if _, err := os.Stat(filepath.Join(f.state, "fleet", "overrides.json")); !os.IsNotExist(err) {
		t.Errorf("failed live settings were saved: %v", err)
	}

	// Good settings still apply after the failures: no trace is kept now.
	zero := 0.0
	hash = fs.push(sidecarconfig.Overrides{TraceSampling: &zero, LogLevel: "warn"})
	fs.awaitStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED)
	sendSpan(t, f.cfg.OTLP.GRPCEndpoint, "sampled out")
	// The span passed the sampler when its export returned; a kept one
	// would wait in the traces' batch processor at most as long as a
	// metric sent after it waits in the metrics' one.
	sendMetric(t, f.cfg.OTLP.GRPCEndpoint, "after the sampling change")
	pollUntil(t, 30*time.Second, "the metric after the sampling change", func() bool {
		return slices.ContainsFunc(f.sink.Metrics(), func(m otlpsink.Metric) bool { return m.Name == "after the sampling change" })
	})
	if spansNamed(f.sink, "sampled out") != 0 {
		t.Error("a span passed a trace sampling of 0")
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

// garbageServer accepts the WebSocket upgrade over TLS, sends a frame that
// is not OpAMP and hangs up: a broken fleet server. It counts the upgrades.
type garbageServer struct {
	mu       sync.Mutex
	attempts []time.Time
	url      string
}

func startGarbageServer(t *testing.T, ca *pki.KeyPair) *garbageServer {
	t.Helper()
	leaf, err := pki.Issue(ca, pki.Spec{CommonName: "garbage", IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	g := &garbageServer{url: "wss://" + lis.Addr().String() + "/v1/opamp"}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.attempts = append(g.attempts, time.Now())
		g.mu.Unlock()
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer func() { _ = conn.Close() }()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		_, _ = fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		garbage := []byte("\xff\xfethis is not an OpAMP message")
		_, _ = buf.Write(append([]byte{0x82, byte(len(garbage))}, garbage...))
		_ = buf.Flush()
		// Read what the client sends until it gives up, then hang up.
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = bufio.NewReader(conn).ReadString(0)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return g
}

func (g *garbageServer) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.attempts)
}

// TestFleetServerAnsweringGarbageNeverStopsTelemetry: a fleet server that
// accepts and answers garbage is retried with a growing, jittered pause
// (a handful of attempts in 12s, not a tight loop), and the collector runs
// on with the pod's own settings.
func TestFleetServerAnsweringGarbageNeverStopsTelemetry(t *testing.T) {
	ca, caFile := newCA(t, "fargate-otel fleet test CA")
	g := startGarbageServer(t, ca)
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := f.startFleetSidecar("FARGATE_OTEL_FLEET_ENDPOINT="+g.url, "FARGATE_OTEL_FLEET_CA_FILE="+caFile,
		"FARGATE_OTEL_FLEET_TOKEN_FILE="+token, "FARGATE_OTEL_FLEET_HEARTBEAT=1s")
	awaitHealth(t, f.health, "Server available")
	pollUntil(t, 30*time.Second, "a first attempt", func() bool { return g.count() >= 1 })
	g.mu.Lock()
	first := g.attempts[0]
	g.mu.Unlock()

	// Telemetry flows meanwhile, all along the window (each span waits
	// for the batch processor's timeout, which paces the loop).
	window := 12 * time.Second
	for i := 0; time.Since(first) < window; i++ {
		name := fmt.Sprintf("while the fleet server is broken %d", i)
		sendSpan(t, f.cfg.OTLP.GRPCEndpoint, name)
		pollUntil(t, 10*time.Second, "the span at the sink", func() bool { return spansNamed(f.sink, name) == 1 })
	}
	g.mu.Lock()
	var in []time.Duration
	for _, at := range g.attempts {
		if at.Sub(first) <= window {
			in = append(in, at.Sub(first).Round(10*time.Millisecond))
		}
	}
	g.mu.Unlock()
	// 1s, 2s, 4s, 8s (each +-50%) after the first: 3 to 5 attempts in 12s.
	if len(in) < 3 || len(in) > 6 {
		t.Errorf("%d attempts in %s (at %v), want 3 to 6: reconnects must back off, and go on", len(in), window, in)
	}
	if p.Exited() {
		t.Fatal("the collector exited")
	}
	t.Logf("attempts at %v", in)
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}

// TestFleetServerWithAnotherCAIsNeverTrusted: a server whose certificate
// does not chain to the fleet CA the pod has gets no connection and sends
// no config; an endpoint without TLS is refused outright.
func TestFleetServerWithAnotherCAIsNeverTrusted(t *testing.T) {
	other, _ := newCA(t, "some other CA")
	fs := startFleetServer(t, other)
	_, fs.caFile = newCA(t, "the pod's fleet CA")
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	second := startSink(t)
	fs.push(sidecarconfig.Overrides{Exporters: []sidecarconfig.Exporter{exporterTo("otlp_grpc/second", second.Addr())}})
	p := f.startFleetSidecar(fs.env()...)
	awaitHealth(t, f.health, "Server available")
	awaitLog(t, p, "the refused certificate", "does not chain to the fleet CA", `"attempt":2`)
	sendSpan(t, f.cfg.OTLP.GRPCEndpoint, "untrusted server")
	pollUntil(t, 30*time.Second, "the span at the pod's own exporter", func() bool { return spansNamed(f.sink, "untrusted server") == 1 })
	fs.mu.Lock()
	tokens, msgs := len(fs.tokens), len(fs.raw)
	fs.mu.Unlock()
	if tokens != 0 || msgs != 0 {
		t.Errorf("the server saw %d requests and %d messages from an agent that must not trust it", tokens, msgs)
	}
	if len(second.Spans()) != 0 {
		t.Error("the untrusted server's config was applied")
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}

	env := fs.env()
	env[0] = "FARGATE_OTEL_FLEET_ENDPOINT=ws://" + fs.srv.Addr().String() + "/v1/opamp"
	p = f.startFleetSidecar(env...)
	awaitLog(t, p, "the refused endpoint", "must be a wss:// URL")
	awaitHealth(t, f.health, "Server available")
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: want exit 0, got %v", err)
	}
}
