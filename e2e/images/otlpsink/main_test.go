package main

import (
	"context"
	"net/http/httptest"
	"strings"
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
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/internal/syncbuf"
)

func start(t *testing.T, maxLogs int) (*server, *grpc.ClientConn, sinkapi.Client, *syncbuf.Buffer) {
	t.Helper()
	out := &syncbuf.Buffer{}
	s := newServer(maxLogs, out)
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{DiscardLogs: true, OnLogs: s.addLogs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	s.sink = sink
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.printMetricsAndSpans(ctx)
	hs := httptest.NewServer(s.handler())
	t.Cleanup(hs.Close)
	conn, err := grpc.NewClient(sink.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return s, conn, sinkapi.Client{Get: sinkapi.HTTPGetter(hs.URL)}, out
}

func podResource(attrs pcommon.Map, ns, pod string) {
	attrs.PutStr(sinkapi.AttrNamespace, ns)
	attrs.PutStr(sinkapi.AttrPod, pod)
	attrs.PutStr(sinkapi.AttrContainer, "app")
}

func logs(ns, pod string, bodies ...string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	podResource(rl.Resource().Attributes(), ns, pod)
	sl := rl.ScopeLogs().AppendEmpty()
	for i, b := range bodies {
		r := sl.LogRecords().AppendEmpty()
		r.Body().SetStr(b)
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		r.Attributes().PutStr(sinkapi.AttrStream, stream)
	}
	return ld
}

func TestQueriesAndSummary(t *testing.T) {
	_, conn, client, out := start(t, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(logs("shop", "web-1", "a", "b", "c"))); err != nil {
		t.Fatal(err)
	}
	if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(logs("other", "x", "z"))); err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	podResource(rm.Resource().Attributes(), "shop", "web-1")
	for _, n := range []string{"k8s.pod.cpu.time", "k8s.pod.memory.usage", "k8s.pod.cpu.time"} {
		rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetName(n)
	}
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	podResource(rs.Resource().Attributes(), "shop", "web-1")
	rs.Resource().Attributes().PutStr(sinkapi.AttrService, "demo-app")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName("demo-app.work")
	sp.SetTraceID(pcommon.TraceID{1, 2, 3})
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatal(err)
	}

	got, err := client.Logs(ctx, sinkapi.Filter{Namespace: "shop", Pod: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Body != "a" || got[1].Stream() != "stderr" || got[2].Resource[sinkapi.AttrPod] != "web-1" {
		t.Errorf("logs of shop/web-1: %+v", got)
	}
	series, err := client.Metrics(ctx, sinkapi.Filter{Pod: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, m := range series {
		counts[m.Name] = m.Count
	}
	if len(series) != 2 || counts["k8s.pod.cpu.time"] != 2 || counts["k8s.pod.memory.usage"] != 1 {
		t.Errorf("metric series: %+v", series)
	}
	if none, err := client.Metrics(ctx, sinkapi.Filter{Namespace: "nowhere"}); err != nil || len(none) != 0 {
		t.Errorf("filtered metrics: %v, %v", none, err)
	}
	spans, err := client.Spans(ctx, sinkapi.Filter{Namespace: "shop"})
	if err != nil || len(spans) != 1 || spans[0].Name != "demo-app.work" || !strings.HasPrefix(spans[0].TraceID, "010203") {
		t.Errorf("spans: %+v, %v", spans, err)
	}
	summary, err := client.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"logs: 4 lines",
		`shop/web-1 container app: stdout 2, stderr 1; last: "c"`,
		"metrics: 3 received",
		"shop/web-1:\n    kubelet stats (2): k8s.pod.cpu.time, k8s.pod.memory.usage\n",
		"spans: 1 in 1 traces",
		"service demo-app in shop/web-1: demo-app.work x1",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	// What is printed as it arrives.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "span    shop/web-1 demo-app.work") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	printed := out.String()
	for _, want := range []string{
		"log     shop/web-1/app stdout a\n",
		"log     shop/web-1/app stderr b\n",
		"metrics shop/web-1: 3: k8s.pod.cpu.time, k8s.pod.memory.usage\n",
		"span    shop/web-1 demo-app.work trace 010203",
	} {
		if !strings.Contains(printed, want) {
			t.Errorf("printed output lacks %q:\n%s", want, printed)
		}
	}
}

func TestLogsAreBounded(t *testing.T) {
	s, conn, client, _ := start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, b := range []string{"1", "2", "3", "4", "5"} {
		if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(logs("ns", "p", b))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := client.Logs(ctx, sinkapi.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, l := range got {
		bodies = append(bodies, l.Body)
	}
	if strings.Join(bodies, ",") != "3,4,5" {
		t.Errorf("kept %v, want the 3 newest in order", bodies)
	}
	if s.sink.LogCount() != 5 {
		t.Errorf("counted %d", s.sink.LogCount())
	}
}
