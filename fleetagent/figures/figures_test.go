package figures

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
)

// batch builds a file_log batch: per container, records of "stream:body".
func batch(containers map[string][]string) plog.Logs {
	ld := plog.NewLogs()
	for c, recs := range containers {
		rl := ld.ResourceLogs().AppendEmpty()
		if c != "" {
			rl.Resource().Attributes().PutStr(containerAttr, c)
		}
		sl := rl.ScopeLogs().AppendEmpty()
		for _, r := range recs {
			stream, body := "", r
			if i := indexColon(r); i >= 0 {
				stream, body = r[:i], r[i+1:]
			}
			lr := sl.LogRecords().AppendEmpty()
			if stream != "" {
				lr.Attributes().PutStr(streamAttr, stream)
			}
			lr.Body().SetStr(body)
		}
	}
	return ld
}

func indexColon(s string) int {
	for i := range s {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

func TestCount(t *testing.T) {
	read, dropped := count(batch(map[string][]string{
		"app": {
			"stdout:hello", "stdout:world", "stderr:oops",
			"stderr:fargate-otel-tee: 12 log lines were lost since 2026-12-03T15:04:05Z: the log file's queue was full",
			// Not the wrapper's reports: on stdout, another text, a bad count.
			"stdout:fargate-otel-tee: 3 log lines were lost since then",
			"stderr:fargate-otel-tee: stdout is a terminal",
			"stderr:fargate-otel-tee: x log lines were lost since then",
		},
		"sidecar": {"stderr:fargate-otel-tee: 1 log lines were lost since now: disk full", "nostream"},
		"":        {"stdout:no container"},
	}))
	want := map[string]int64{"app/stdout": 3, "app/stderr": 4, "sidecar/stderr": 1, "sidecar/unknown": 1, "unknown/stdout": 1}
	if fmt.Sprint(read) != fmt.Sprint(want) {
		t.Errorf("read %v, want %v", read, want)
	}
	if fmt.Sprint(dropped) != fmt.Sprint(map[string]int64{"app": 12, "sidecar": 1}) {
		t.Errorf("dropped %v", dropped)
	}
}

func TestFileLogCountsWhatThePipelineTook(t *testing.T) {
	f := New(nil)
	refuse := errors.New("memory limiter: refused")
	var next error
	c := &countingLogs{next: consumerFunc(func(context.Context, plog.Logs) error { return next }), f: f}
	ld := batch(map[string][]string{"app": {"stdout:a", "stderr:fargate-otel-tee: 2 log lines were lost since x: y"}})

	next = refuse
	if err := c.ConsumeLogs(context.Background(), ld); !errors.Is(err, refuse) {
		t.Fatalf("the refusal was not passed back: %v", err)
	}
	if r := f.Report(context.Background(), time.Now()); len(r.LinesRead) != 0 || len(r.WrapperDropped) != 0 {
		t.Fatalf("a refused batch was counted (file_log retries it): %+v", r)
	}
	next = nil
	_ = c.ConsumeLogs(context.Background(), ld)
	r := f.Report(context.Background(), time.Now())
	if r.LinesRead["app/stdout"] != 1 || r.LinesRead["app/stderr"] != 1 || r.WrapperDropped["app"] != 2 {
		t.Fatalf("report %+v", r)
	}
}

type consumerFunc func(context.Context, plog.Logs) error

func (consumerFunc) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (f consumerFunc) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return f(ctx, ld)
}

func TestReportsAreBounded(t *testing.T) {
	f := New(func(context.Context) int64 { return 42 })
	for i := range MaxKeys + 10 {
		f.lines(map[string]int64{fmt.Sprintf("c%d/stdout", i): 1}, nil)
	}
	r := f.Report(context.Background(), time.Unix(0, 0))
	if len(r.LinesRead) != MaxKeys+1 || r.LinesRead[OtherKey] != 10 {
		t.Fatalf("%d keys, %d under %s", len(r.LinesRead), r.LinesRead[OtherKey], OtherKey)
	}
	if r.QueueBytes != 42 || r.Time != "1970-01-01T00:00:00Z" {
		t.Fatalf("report %+v", r)
	}
	for _, s := range Signals {
		if _, ok := r.ExportFailures[s]; !ok {
			t.Errorf("no failures count for %s", s)
		}
		if v, ok := r.LastExport[s]; !ok || v != "" {
			t.Errorf("last export of %s: %q", s, v)
		}
	}
}

func settings(id component.ID) exporter.Settings {
	set := exportertest.NewNopSettings(id.Type())
	set.ID = id
	return set
}

// TestExportersCountTheirOutcomes runs real exporters: the debug exporter
// succeeds, an OTLP exporter to a port nobody listens on fails.
func TestExportersCountTheirOutcomes(t *testing.T) {
	ctx := context.Background()
	f := New(nil)

	df := WrapExporter(debugexporter.NewFactory(), f)
	if df.Type() != debugexporter.NewFactory().Type() {
		t.Fatalf("type %s", df.Type())
	}
	ok, err := df.CreateLogs(ctx, settings(component.NewID(df.Type())), df.CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ok.Shutdown(ctx) }()
	before := time.Now()
	if err := ok.ConsumeLogs(ctx, batch(map[string][]string{"app": {"stdout:x"}})); err != nil {
		t.Fatal(err)
	}

	of := WrapExporter(otlpexporter.NewFactory(), f)
	if a, isAliased := of.(aliased); !isAliased || a.DeprecatedAlias().String() != "otlp" {
		t.Errorf("otlp_grpc lost its old name otlp")
	}
	cfg := of.CreateDefaultConfig().(*otlpexporter.Config)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientConfig.Endpoint = l.Addr().String()
	_ = l.Close()
	cfg.ClientConfig.TLS.Insecure = true
	cfg.RetryConfig.Enabled = false
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.TimeoutConfig = exporterhelper.TimeoutConfig{Timeout: 2 * time.Second}
	bad, err := of.CreateMetrics(ctx, settings(component.NewID(of.Type())), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bad.Shutdown(ctx) }()
	md := metricsWithPoints(3)
	if err := bad.ConsumeMetrics(ctx, md); err == nil {
		t.Fatal("an export to a closed port succeeded")
	}

	r := f.Report(ctx, time.Now())
	if r.LastExport["logs"] == "" || r.LastExport["metrics"] != "" {
		t.Errorf("last exports %v", r.LastExport)
	}
	if at, err := time.Parse(time.RFC3339Nano, r.LastExport["logs"]); err != nil || at.Before(before) {
		t.Errorf("last logs export at %q (%v), before %s", r.LastExport["logs"], err, before)
	}
	if r.ExportFailures["metrics"] != 3 || r.ExportFailures["logs"] != 0 {
		t.Errorf("failures %v, want 3 metric points", r.ExportFailures)
	}
}

// The file_log factory wrapper keeps the receiver's type and alias.
func TestWrapFileLogKeepsItsNames(t *testing.T) {
	base := receiver.NewFactory(component.MustNewType("file_log"), func() component.Config { return &struct{}{} },
		receiver.WithLogs(func(_ context.Context, _ receiver.Settings, _ component.Config, next consumer.Logs) (receiver.Logs, error) {
			if _, ok := next.(*countingLogs); !ok {
				return nil, fmt.Errorf("the receiver got a %T, not the counting consumer", next)
			}
			return nil, nil
		}, component.StabilityLevelBeta))
	w := WrapFileLog(base, New(nil))
	if w.Type() != base.Type() || w.LogsStability() != component.StabilityLevelBeta {
		t.Fatalf("type %s, stability %s", w.Type(), w.LogsStability())
	}
	if _, err := w.CreateLogs(context.Background(), receiver.Settings{ID: component.NewID(base.Type())}, &struct{}{}, consumertest.NewNop()); err != nil {
		t.Fatal(err)
	}
}

func metricsWithPoints(n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("m")
	points := g.SetEmptyGauge().DataPoints()
	for i := range n {
		points.AppendEmpty().SetIntValue(int64(i))
	}
	return md
}
