package otlpsink

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func startSink(t *testing.T, opts Options) (*Sink, *grpc.ClientConn) {
	t.Helper()
	s, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return s, conn
}

func someLogs(bodies ...string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.pod.name", "web-1")
	sl := rl.ScopeLogs().AppendEmpty()
	for _, b := range bodies {
		r := sl.LogRecords().AppendEmpty()
		r.Body().SetStr(b)
		r.Attributes().PutStr("log.iostream", "stdout")
		r.SetTimestamp(pcommon.NewTimestampFromTime(time.Unix(1700000000, 5)))
	}
	return ld
}

func TestSinkReceivesAllSignals(t *testing.T) {
	var seen int
	s, conn := startSink(t, Options{OnLogs: func(ld plog.Logs, _ time.Time) { seen += ld.LogRecordCount() }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(someLogs("a", "b"))); err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.pod.uid", "u1")
	rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetName("k8s.pod.cpu.usage")
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName("GET /")
	sp.SetTraceID(pcommon.TraceID{1, 2, 3})
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatal(err)
	}

	if err := s.Await(ctx, func() bool { return len(s.Spans()) == 1 }); err != nil {
		t.Fatal(err)
	}
	logs := s.Logs()
	if len(logs) != 2 || logs[0].Body != "a" || logs[1].Body != "b" || s.LogCount() != 2 || seen != 2 {
		t.Fatalf("logs = %+v, count %d, seen %d", logs, s.LogCount(), seen)
	}
	if logs[0].Resource["k8s.pod.name"] != "web-1" || logs[0].Attributes["log.iostream"] != "stdout" {
		t.Errorf("attributes lost: %+v", logs[0])
	}
	if !logs[0].Timestamp.Equal(time.Unix(1700000000, 5)) || logs[0].Received.IsZero() {
		t.Errorf("times: %+v", logs[0])
	}
	if m := s.Metrics(); len(m) != 1 || m[0].Name != "k8s.pod.cpu.usage" || m[0].Resource["k8s.pod.uid"] != "u1" {
		t.Errorf("metrics = %+v", m)
	}
	if sp := s.Spans(); sp[0].Name != "GET /" || sp[0].TraceID != "01020300000000000000000000000000" {
		t.Errorf("spans = %+v", sp)
	}
}

func TestSinkFailWith(t *testing.T) {
	s, conn := startSink(t, Options{DiscardLogs: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := plogotlp.NewGRPCClient(conn)

	s.FailWith(status.Error(codes.Unavailable, "down for the test"))
	_, err := client.Export(ctx, plogotlp.NewExportRequestFromLogs(someLogs("x")))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("export error = %v, want Unavailable", err)
	}
	if s.LogCount() != 0 {
		t.Fatal("a refused request was counted")
	}
	s.FailWith(nil)
	if _, err := client.Export(ctx, plogotlp.NewExportRequestFromLogs(someLogs("x", "y"))); err != nil {
		t.Fatal(err)
	}
	if s.LogCount() != 2 || len(s.Logs()) != 0 {
		t.Errorf("count %d, kept %d: want 2 counted, none kept", s.LogCount(), len(s.Logs()))
	}
}

func TestAwaitTimesOut(t *testing.T) {
	s, _ := startSink(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Await(ctx, func() bool { return s.LogCount() > 0 }); err == nil {
		t.Fatal("Await returned nil with nothing received")
	}
}
