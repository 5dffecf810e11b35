// Package otlpenvtest proves that the OTLP variable Mutate gives an app
// container is enough for real OpenTelemetry SDK exporters of both
// protocols, for all three signals, to reach the real sidecar collector:
// the app process runs with exactly the container's environment (no
// endpoint in code), the collector with the settings Mutate gave the
// sidecar, on the addresses a pod has (localhost:4317 and :4318) in a
// network namespace of the test's own, and the span, metric or log record
// must arrive at a sink behind the collector.
package otlpenvtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// The variables that mark the test binary run as the app: the protocol,
// the signal and the name of what it sends (span or metric name, log body).
const (
	appEnv    = "FARGATE_OTEL_TEST_APP"
	signalEnv = "FARGATE_OTEL_TEST_SIGNAL"
	markEnv   = "FARGATE_OTEL_TEST_MARK"
)

func TestMain(m *testing.M) {
	if proto := os.Getenv(appEnv); proto != "" {
		os.Exit(app(proto, os.Getenv(signalEnv), os.Getenv(markEnv)))
	}
	// A network namespace of our own: the collector listens where it does
	// in a pod (127.0.0.1:4317, :4318, :13133) without meeting other tests.
	os.Exit(cluster.RunInNetNS(m))
}

// app is what an instrumented Go app does: an exporter of the signal built
// from the environment alone, one span, metric or log record named mark,
// exported. Its exit status says whether the export succeeded.
func app(proto, signal, mark string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var err error
	switch signal {
	case "traces":
		err = exportSpan(ctx, proto, mark)
	case "metrics":
		err = exportMetric(ctx, proto, mark)
	case "logs":
		err = exportLog(ctx, proto, mark)
	default:
		err = fmt.Errorf("unknown signal %q", signal)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func exportSpan(ctx context.Context, proto, name string) error {
	var exp *otlptrace.Exporter
	var err error
	if proto == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer("otlpenvtest").Start(ctx, name)
	s.End()
	if err := exp.ExportSpans(ctx, rec.Ended()); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportMetric counts once on a counter named name, collects it with a
// manual reader and exports what was collected (the exporter's own error,
// not one a periodic reader would only log).
func exportMetric(ctx context.Context, proto, name string) error {
	var exp sdkmetric.Exporter
	var err error
	if proto == "grpc" {
		exp, err = otlpmetricgrpc.New(ctx)
	} else {
		exp, err = otlpmetrichttp.New(ctx)
	}
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c, err := mp.Meter("otlpenvtest").Int64Counter(name)
	if err != nil {
		return fmt.Errorf("counter: %w", err)
	}
	c.Add(ctx, 1)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if err := exp.Export(ctx, &rm); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportLog emits one record whose body is body through the SDK's logger,
// keeps it, and exports it (the exporter's own error again).
func exportLog(ctx context.Context, proto, body string) error {
	var exp sdklog.Exporter
	var err error
	if proto == "grpc" {
		exp, err = otlploggrpc.New(ctx)
	} else {
		exp, err = otlploghttp.New(ctx)
	}
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	keep := &keepRecords{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(keep))
	var r otellog.Record
	r.SetTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetBody(otellog.StringValue(body))
	lp.Logger("otlpenvtest").Emit(ctx, r)
	if len(keep.records) != 1 {
		return fmt.Errorf("the logger kept %d records, not 1", len(keep.records))
	}
	if err := exp.Export(ctx, keep.records); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// keepRecords is a log processor that keeps what is emitted, for the app
// to export itself.
type keepRecords struct{ records []sdklog.Record }

func (k *keepRecords) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (k *keepRecords) OnEmit(_ context.Context, r *sdklog.Record) error {
	k.records = append(k.records, r.Clone())
	return nil
}
func (k *keepRecords) Shutdown(context.Context) error   { return nil }
func (k *keepRecords) ForceFlush(context.Context) error { return nil }

// TestSDKsOfBothProtocolsReachTheSidecar runs the Go SDK's OTLP/gRPC and
// OTLP/HTTP exporters of traces, metrics and logs with the app container's
// environment from Mutate; all six deliver. The environment earlier versions gave
// (OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317, PROTOCOL=grpc) fails
// the HTTP exporter, and no variable at all fails both (Go's exporters
// default to TLS): the rows that say why the injector sets what it sets,
// for every signal.
func TestSDKsOfBothProtocolsReachTheSidecar(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f", Namespace: "shop", UID: "0b7c1c7e-1f0e-4d5e-9a55-3a1f6c1d2e3f",
			Labels: map[string]string{injector.FargateProfileLabel: "default"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/shop/web:1", Command: []string{"/app/web"}}}},
	}
	cfg := injector.DefaultConfig()
	cfg.KubeletStats.Mode = injector.KubeletStatsOff
	gw := sidecarconfig.GatewayExporter(sink.Addr())
	cfg.Exporters = []injector.ExporterSpec{{ID: gw.ID, Config: gw.Config}}
	res := injector.Mutate(pod, cfg, nil)
	if !res.Injected {
		t.Fatalf("not injected: %s %v", res.Skip, res.Warnings)
	}
	appEnvVars := containerEnv(t, res.Pod.Spec.Containers[0])
	startCollector(t, res.Pod)

	rows := []struct {
		name    string
		proto   string
		env     []string
		deliver bool
	}{
		{"gRPC exporter, Mutate's env", "grpc", appEnvVars, true},
		{"HTTP exporter, Mutate's env", "http", appEnvVars, true},
		{"HTTP exporter, an endpoint for gRPC", "http", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, false},
		{"gRPC exporter, no variable", "grpc", nil, false},
	}
	for _, signal := range []string{"traces", "metrics", "logs"} {
		for i, tc := range rows {
			t.Run(signal+"/"+tc.name, func(t *testing.T) {
				// A valid instrument name, unique per row and signal.
				mark := fmt.Sprintf("otlpenvtest.%s.%s.row%d", signal, tc.proto, i)
				cmd := exec.Command(os.Args[0])
				// Exactly the container's environment, and what marks the app.
				cmd.Env = append(append([]string{}, tc.env...), appEnv+"="+tc.proto, signalEnv+"="+signal, markEnv+"="+mark)
				out, err := cmd.CombinedOutput()
				if tc.deliver {
					if err != nil {
						t.Fatalf("the app's export failed (%v): %s", err, out)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := sink.Await(ctx, func() bool { return arrived(sink, signal, mark) }); err != nil {
						t.Fatalf("%s %s did not reach the sink behind the collector: %v", signal, mark, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("the export succeeded, yet this environment should not reach the sidecar: %s", out)
				}
				if arrived(sink, signal, mark) {
					t.Fatalf("the %s arrived", signal)
				}
				t.Logf("as expected, the export failed: %s", strings.TrimSpace(string(out)))
			})
		}
	}
}

// containerEnv is the container's environment as the kubelet gives it
// (plain values only: the injector gives the app no valueFrom).
func containerEnv(t *testing.T, c corev1.Container) []string {
	t.Helper()
	var env []string
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s of the app is valueFrom: the test cannot give it", e.Name)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	if len(env) == 0 {
		t.Fatal("Mutate gave the app no environment")
	}
	return env
}

// startCollector runs the real collector with the settings Mutate gave the
// sidecar; only the paths of the logs volume move into a temporary folder.
func startCollector(t *testing.T, pod *corev1.Pod) *collectortest.Process {
	t.Helper()
	var settings string
	for _, c := range pod.Spec.InitContainers {
		if c.Name != injector.CollectorContainerName {
			continue
		}
		for _, e := range c.Env {
			if e.Name == sidecarconfig.SettingsEnvVar {
				settings = e.Value
			}
		}
	}
	cc, err := sidecarconfig.Decode([]byte(settings))
	if err != nil {
		t.Fatalf("the sidecar's settings %q: %v", settings, err)
	}
	if cc.OTLP.GRPCEndpoint != "127.0.0.1:4317" || cc.OTLP.HTTPEndpoint != "127.0.0.1:4318" {
		t.Fatalf("the sidecar listens on %s and %s, not the SDKs' default ports", cc.OTLP.GRPCEndpoint, cc.OTLP.HTTPEndpoint)
	}
	dir := t.TempDir()
	cc.StorageDir = filepath.Join(dir, "state")
	cc.LogInclude = []string{filepath.Join(dir, "*", "*", "*.log")}
	cc.LogExclude = nil
	if err := os.MkdirAll(cc.StorageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	config, err := sidecarconfig.Render(cc)
	if err != nil {
		t.Fatal(err)
	}
	p := collectortest.Start(t, collectortest.Options{Config: config, Env: collectortest.PodEnv("fargate-ip-10-0-0-1", pod.Namespace, pod.Name, string(pod.UID))})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.WaitHealthy(ctx, "http://127.0.0.1:13133/"); err != nil {
		t.Fatalf("collector: %v\n%s", err, collectortest.Tail(p.Logs(), 30))
	}
	return p
}

// arrived says whether the sink got the span, metric or log record mark.
func arrived(sink *otlpsink.Sink, signal, mark string) bool {
	switch signal {
	case "traces":
		for _, s := range sink.Spans() {
			if s.Name == mark {
				return true
			}
		}
	case "metrics":
		for _, m := range sink.Metrics() {
			if m.Name == mark {
				return true
			}
		}
	case "logs":
		for _, r := range sink.Logs() {
			if r.Body == mark {
				return true
			}
		}
	}
	return false
}
