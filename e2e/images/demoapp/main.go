// Command demoapp is the workload of the end-to-end test and of `make demo`:
// a small app that does what the product has to capture. It writes
// sequence-numbered lines to stdout and stderr, and sends traces (and a
// metric) over OTLP/gRPC to the endpoint OpenTelemetry SDKs use
// (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4317).
//
//	demoapp                        a line on each stream every second, until SIGTERM
//	demoapp -lines 20              20 lines on each stream, then exit 0 (a Job)
//	demoapp -lines 10 -interval 50ms -traces-every 0
//
// Its output is deterministic (no times, no ids), so that `kubectl logs` of
// an injected pod can be compared byte for byte with that of a plain one.
// What happens to the telemetry it sends goes to stderr only with -otlp-log:
// like an SDK, the app does not fail or wait when nobody listens.
//
// The image's ENTRYPOINT is /demoapp and its CMD the default flags, so that
// a pod spec without `command` makes the injector read them from the
// registry.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type options struct {
	lines       int
	interval    time.Duration
	tracesEvery int
	metrics     bool
	service     string
	endpoint    string
	otlpLog     bool
	flushWait   time.Duration
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, o, os.Stdout, os.Stderr))
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demoapp", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.IntVar(&o.lines, "lines", 0, "exit after this many lines on each stream (0: run until SIGTERM)")
	fs.DurationVar(&o.interval, "interval", time.Second, "time from one line to the next on the same stream")
	fs.IntVar(&o.tracesEvery, "traces-every", 10, "send a trace at start and then every N lines (0: at start only; -1: never)")
	fs.BoolVar(&o.metrics, "metrics", true, "send the metric demo_app.lines with each trace")
	fs.StringVar(&o.service, "service", envOr("OTEL_SERVICE_NAME", "demo-app"), "service.name of the telemetry ($OTEL_SERVICE_NAME)")
	fs.StringVar(&o.endpoint, "otlp-endpoint", envOr("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"), "OTLP/gRPC endpoint, host:port or http://host:port ($OTEL_EXPORTER_OTLP_ENDPOINT)")
	fs.BoolVar(&o.otlpLog, "otlp-log", false, "say on stderr what became of each export")
	fs.DurationVar(&o.flushWait, "flush-wait", 5*time.Second, "how long to wait at exit for telemetry still being sent")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(errOut, "demoapp: unexpected arguments %q\n", fs.Args())
		return o, errors.New("arguments")
	}
	if o.lines < 0 || o.interval < 0 {
		_, _ = fmt.Fprintln(errOut, "demoapp: -lines and -interval must not be negative")
		return o, errors.New("flags")
	}
	return o, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// run writes the lines and returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	exp := newExporter(o, stderr)
	defer exp.close(o.flushWait)
	if o.tracesEvery >= 0 {
		exp.send(0)
	}
	half := o.interval / 2
	for n := 1; o.lines == 0 || n <= o.lines; n++ {
		suffix := ""
		if n == o.lines {
			suffix = " (last)"
		}
		_, _ = fmt.Fprintf(stdout, "%s stdout line %d%s\n", o.service, n, suffix)
		// Half an interval between the two streams: their order in the
		// kubelet's log is then the order they were written in.
		if !pause(ctx, half) {
			return 0
		}
		_, _ = fmt.Fprintf(stderr, "%s stderr line %d%s\n", o.service, n, suffix)
		if o.tracesEvery > 0 && n%o.tracesEvery == 0 {
			exp.send(n)
		}
		if n != o.lines && !pause(ctx, o.interval-half) {
			return 0
		}
	}
	return 0
}

// pause waits d, or returns false when ctx ends (SIGTERM).
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// exporter sends OTLP in the background: the lines never wait for it.
type exporter struct {
	o     options
	log   io.Writer
	conn  *grpc.ClientConn
	queue chan int
	done  chan struct{}
	mu    sync.Mutex
}

func newExporter(o options, log io.Writer) *exporter {
	e := &exporter{o: o, log: log, queue: make(chan int, 16), done: make(chan struct{})}
	target := o.endpoint
	for _, scheme := range []string{"http://", "https://", "grpc://"} {
		target = strings.TrimPrefix(target, scheme)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.logf("otlp: endpoint %q: %v", o.endpoint, err)
	}
	e.conn = conn
	go e.loop()
	return e
}

func (e *exporter) logf(format string, args ...any) {
	if e.o.otlpLog {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, _ = fmt.Fprintf(e.log, format+"\n", args...)
	}
}

// send queues a trace (and a metric) for line n; a full queue drops it.
func (e *exporter) send(n int) {
	select {
	case e.queue <- n:
	default:
		e.logf("otlp: queue full, trace of line %d dropped", n)
	}
}

func (e *exporter) loop() {
	defer close(e.done)
	for n := range e.queue {
		if e.conn == nil {
			continue
		}
		e.export(n)
	}
}

// export sends one trace, retrying for a few seconds: the collector may
// still be starting (without native sidecars) or restarting.
func (e *exporter) export(n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td, traceID := trace(e.o.service, n)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = ptraceotlp.NewGRPCClient(e.conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err == nil {
			break
		}
		if !pause(ctx, time.Duration(attempt+1)*200*time.Millisecond) {
			break
		}
	}
	if err != nil {
		e.logf("otlp: trace %s of line %d not sent: %v", traceID, n, err)
		return
	}
	e.logf("otlp: sent trace %s (line %d)", traceID, n)
	if !e.o.metrics {
		return
	}
	if _, err := pmetricotlp.NewGRPCClient(e.conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(metric(e.o.service, n))); err != nil {
		e.logf("otlp: metric of line %d not sent: %v", n, err)
	}
}

// close waits up to wait for queued exports, so that the last trace of a
// Job is not lost.
func (e *exporter) close(wait time.Duration) {
	close(e.queue)
	select {
	case <-e.done:
	case <-time.After(wait):
	}
	if e.conn != nil {
		_ = e.conn.Close()
	}
}

// trace is a root span "demo-app.work" with one child "demo-app.step".
func trace(service string, line int) (ptrace.Traces, string) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("demoapp")
	var tid pcommon.TraceID
	var root, child pcommon.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(root[:])
	_, _ = rand.Read(child[:])
	end := time.Now()
	start := end.Add(-5 * time.Millisecond)

	p := ss.Spans().AppendEmpty()
	p.SetName(service + ".work")
	p.SetKind(ptrace.SpanKindServer)
	p.SetTraceID(tid)
	p.SetSpanID(root)
	p.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	p.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	p.Attributes().PutInt("demo.line", int64(line))

	c := ss.Spans().AppendEmpty()
	c.SetName(service + ".step")
	c.SetTraceID(tid)
	c.SetSpanID(child)
	c.SetParentSpanID(root)
	c.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
	c.SetEndTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Millisecond)))
	return td, tid.String()
}

// metric is the cumulative count of lines written so far on each stream.
func metric(service string, lines int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", service)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("demoapp")
	m := sm.Metrics().AppendEmpty()
	m.SetName("demo_app.lines")
	m.SetUnit("{line}")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	now := pcommon.NewTimestampFromTime(time.Now())
	for _, stream := range []string{"stdout", "stderr"} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetTimestamp(now)
		dp.SetIntValue(int64(lines))
		dp.Attributes().PutStr("stream", stream)
	}
	return md
}
