package collectorconfig_test

import (
	"bytes"
	"context"
	"net/http"
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

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func podResource(f *fixture) map[string]any {
	return map[string]any{
		"k8s.pod.name":       f.pod.name,
		"k8s.pod.uid":        f.pod.uid,
		"k8s.namespace.name": f.pod.namespace,
		"k8s.node.name":      f.pod.node,
		"k8s.cluster.name":   clusterName,
		"cloud.provider":     "aws",
		"cloud.platform":     "aws_eks",
	}
}

func checkResource(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: resource %s = %v, want %v (all: %v)", what, k, got[k], v, got)
		}
	}
}

// TestOTLPFromTheAppGetsThePodsIdentity: a span and a metric sent over
// OTLP/gRPC and a log over OTLP/HTTP, as an app in the pod sends them, arrive
// with the pod's resource attributes and keep the app's own.
func TestOTLPFromTheAppGetsThePodsIdentity(t *testing.T) {
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	f.startCollector()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conn, err := grpc.NewClient(f.cfg.OTLP.GRPCEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()

	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName("POST /orders")
	sp.SetTraceID(pcommon.TraceID{0xa, 1})
	sp.SetSpanID(pcommon.SpanID{0xb, 1})
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatalf("export span: %v", err)
	}

	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("orders.placed")
	dp := m.SetEmptySum().DataPoints().AppendEmpty()
	dp.SetIntValue(3)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatalf("export metric: %v", err)
	}

	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("order 42 placed")
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+f.cfg.OTLP.HTTPEndpoint+"/v1/logs", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("OTLP/HTTP log: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP log: status %s", resp.Status)
	}

	err = f.sink.Await(ctx, func() bool {
		return len(f.sink.Spans()) > 0 && hasMetric(f, "orders.placed") && hasLog(f, "order 42 placed")
	})
	if err != nil {
		t.Fatalf("spans %v, metrics %v: %v", f.sink.Spans(), f.sink.Metrics(), err)
	}
	want := podResource(f)
	want["service.name"] = "checkout"
	span := f.sink.Spans()[0]
	if span.Name != "POST /orders" {
		t.Errorf("span name %q", span.Name)
	}
	checkResource(t, "span", span.Resource, want)
	for _, m := range f.sink.Metrics() {
		if m.Name == "orders.placed" {
			checkResource(t, "metric", m.Resource, want)
		}
	}
	for _, l := range f.sink.Logs() {
		if l.Body == "order 42 placed" {
			checkResource(t, "log", l.Resource, want)
		}
	}
}

func hasMetric(f *fixture, name string) bool {
	for _, m := range f.sink.Metrics() {
		if m.Name == name {
			return true
		}
	}
	return false
}

func hasLog(f *fixture, body string) bool {
	for _, l := range f.sink.Logs() {
		if l.Body == body {
			return true
		}
	}
	return false
}

// TestKubeletStatsThroughNodesProxy: kubelet_stats reads /stats/summary at
// the API server's nodes/proxy path over TLS with the service account's
// token; pod and container metrics arrive with the pod's identity. The
// second case verifies against a CA file of its own (the nodeproxy's), while
// the service account's CA is an unrelated one.
func TestKubeletStatsThroughNodesProxy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ownCAFile bool
	}{
		{name: "service account CA"},
		{name: "CA file of the endpoint", ownCAFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const caFile = "/run/fargate-otel/nodeproxy/ca.crt"
			f := newFixture(t, func(c *sidecarconfig.Config) {
				c.Signals = []sidecarconfig.Signal{sidecarconfig.Metrics}
				if tc.ownCAFile {
					c.KubeletStats.CAFile = caFile
				}
			})
			if tc.ownCAFile {
				f.runFiles = collectortest.ServiceAccount(testToken, otherCA(t))
				f.runFiles[caFile] = f.kubelet.caPEM
			}
			f.startCollector()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := f.sink.Await(ctx, func() bool {
				return metricWithPrefix(f, "k8s.pod.") != nil && metricWithPrefix(f, "container.") != nil
			})
			if err != nil {
				t.Fatalf("metrics %v, kubelet requests %d (bad auth %d): %v",
					names(f), f.kubelet.requests.Load(), f.kubelet.badAuth.Load(), err)
			}
			if f.kubelet.badAuth.Load() > 0 {
				t.Errorf("%d requests without the service account token", f.kubelet.badAuth.Load())
			}
			// Every pod in the summary keeps its own identity; the node's
			// and the cluster's are added.
			pods := map[string]bool{}
			for _, m := range f.sink.Metrics() {
				if !strings.HasPrefix(m.Name, "k8s.pod.") && !strings.HasPrefix(m.Name, "container.") {
					continue
				}
				uid, _ := m.Resource["k8s.pod.uid"].(string)
				pods[uid] = true
				want := map[string]any{"k8s.node.name": f.pod.node, "k8s.cluster.name": clusterName, "cloud.platform": "aws_eks"}
				if uid == f.pod.uid {
					want = podResource(f)
				}
				checkResource(t, m.Name, m.Resource, want)
				if strings.HasPrefix(m.Name, "container.") {
					if name, _ := m.Resource["k8s.container.name"].(string); name == "" {
						t.Errorf("%s without k8s.container.name: %v", m.Name, m.Resource)
					}
				}
			}
			if !pods[f.pod.uid] {
				t.Errorf("no metric of the pod %s (pods seen: %v)", f.pod.uid, pods)
			}
			if len(pods) != f.podsInSummary {
				t.Errorf("metrics of %d pods, the summary has %d", len(pods), f.podsInSummary)
			}
			t.Logf("%d metrics of %d pods: %v", len(f.sink.Metrics()), len(pods), names(f))
		})
	}
}

func metricWithPrefix(f *fixture, prefix string) *otlpsink.Metric {
	for _, m := range f.sink.Metrics() {
		if strings.HasPrefix(m.Name, prefix) {
			return &m
		}
	}
	return nil
}

func names(f *fixture) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range f.sink.Metrics() {
		if !seen[m.Name] {
			seen[m.Name] = true
			out = append(out, m.Name)
		}
	}
	return out
}

// otherCA is a certificate that did not sign the kubelet's.
func otherCA(t *testing.T) []byte {
	k := startKubelet(t, "unused", nil)
	return k.caPEM
}
