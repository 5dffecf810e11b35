package gatewaytest

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
)

// The simulated workload: pods whose sidecars send spans to the gateway,
// each pod holding one connection to one replica (as a sidecar holds one
// to the Service's ClusterIP, which kube-proxy pins to one pod), and
// traces whose spans are spread across the pods (a request that crosses
// five services).
const (
	numPods       = 20
	spansPerTrace = 5
	// Attributes that name a span of the plan (the span name stays low
	// cardinality for the span metrics).
	attrTrace = "test.trace"
	attrSpan  = "test.span"
)

// podOf is the pod that sends span s of trace t: five different pods.
func podOf(t, s int) int { return (t*7 + s*4) % numPods }

// isError says which traces have a span with status ERROR (one in ten).
func isError(t int) bool { return t%10 == 3 }

type pod struct {
	name   string
	conn   *grpc.ClientConn
	client ptraceotlp.GRPCClient
}

// pods are the simulated pods, pod i connected to targets[i % len].
type pods []*pod

func dialPods(t *testing.T, targets []string) pods {
	t.Helper()
	ps := make(pods, numPods)
	for i := range ps {
		ps[i] = &pod{name: fmt.Sprintf("shop-%02d", i)}
	}
	ps.redial(t, targets)
	t.Cleanup(func() {
		for _, p := range ps {
			_ = p.conn.Close()
		}
	})
	return ps
}

// redial connects every pod anew, pod i to targets[i % len], as sidecars
// reconnect when the gateway ages their connections (max_connection_age).
func (ps pods) redial(t *testing.T, targets []string) {
	t.Helper()
	for i, p := range ps {
		conn, err := grpc.NewClient(targets[i%len(targets)], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		if p.conn != nil {
			_ = p.conn.Close()
		}
		p.conn, p.client = conn, ptraceotlp.NewGRPCClient(conn)
	}
}

// plan is the trace IDs of the traces to send, by index.
type plan []pcommon.TraceID

func newPlan(n int) plan {
	p := make(plan, n)
	for i := range p {
		_, _ = rand.Read(p[i][:])
	}
	return p
}

// send sends spans [lo, hi) of traces [from, to) of the plan, in groups of
// 50 traces: for each group every pod sends one request with its spans of
// those traces (so one request holds spans of many traces, as a sidecar's
// batch does), all pods at once. An export the gateway refuses fails the
// test.
func (ps pods) send(ctx context.Context, t *testing.T, pl plan, from, to, lo, hi int) {
	t.Helper()
	const group = 50
	for g := from; g < to; g += group {
		batches := make([]ptrace.Traces, len(ps))
		for i := range batches {
			batches[i] = ptrace.NewTraces()
			rs := batches[i].ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", i%5))
			rs.Resource().Attributes().PutStr("k8s.pod.name", ps[i].name)
			rs.ScopeSpans().AppendEmpty().Scope().SetName("gatewaytest")
		}
		now := time.Now()
		for tr := g; tr < min(g+group, to); tr++ {
			for s := lo; s < hi; s++ {
				sp := batches[podOf(tr, s)].ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
				sp.SetTraceID(pl[tr])
				sp.SetSpanID(spanID(tr, s))
				if s > 0 {
					sp.SetParentSpanID(spanID(tr, 0))
				}
				sp.SetName("op-" + strconv.Itoa(s))
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Duration(spansPerTrace-s) * time.Millisecond)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
				sp.Attributes().PutInt(attrTrace, int64(tr))
				sp.Attributes().PutInt(attrSpan, int64(s))
				if s == 2 && isError(tr) {
					sp.Status().SetCode(ptrace.StatusCodeError)
				}
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(ps))
		for i, p := range ps {
			if batches[i].SpanCount() == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, errs[i] = p.client.Export(ectx, ptraceotlp.NewExportRequestFromTraces(batches[i]))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("pod %s: the gateway refused spans: %v", ps[i].name, err)
			}
		}
	}
}

// spanID is a span ID unique in the plan (trace index and span index).
func spanID(tr, s int) pcommon.SpanID {
	var id pcommon.SpanID
	v := uint64(tr)*16 + uint64(s) + 1
	for i := 7; i >= 0; i-- {
		id[i] = byte(v)
		v >>= 8
	}
	return id
}

// arrival is where the spans of one trace of the plan arrived.
type arrival struct {
	// replicas that exported any span of the trace (indexes).
	replicas map[int]bool
	// spans that arrived (span index -> times).
	spans map[int]int
}

func (a arrival) whole() bool {
	if len(a.spans) != spansPerTrace {
		return false
	}
	for _, n := range a.spans {
		if n != 1 {
			return false
		}
	}
	return true
}

// arrivals reads what each replica's sink got, by trace index.
func arrivals(sinks []*otlpsink.Sink) (map[int]*arrival, int) {
	out := map[int]*arrival{}
	total := 0
	for r, s := range sinks {
		for _, sp := range s.Spans() {
			tr, ok1 := sp.Attributes[attrTrace].(int64)
			si, ok2 := sp.Attributes[attrSpan].(int64)
			if !ok1 || !ok2 {
				continue
			}
			a := out[int(tr)]
			if a == nil {
				a = &arrival{replicas: map[int]bool{}, spans: map[int]int{}}
				out[int(tr)] = a
			}
			a.replicas[r] = true
			a.spans[int(si)]++
			total++
		}
	}
	return out, total
}

// describe summarises the traces of [from, to) that fail ok, for a test
// failure.
func describe(got map[int]*arrival, from, to int, ok func(*arrival) bool) (bad int, example string) {
	var idx []int
	for tr := from; tr < to; tr++ {
		if a := got[tr]; a == nil || !ok(a) {
			idx = append(idx, tr)
		}
	}
	sort.Ints(idx)
	if len(idx) > 0 {
		a := got[idx[0]]
		if a == nil {
			example = fmt.Sprintf("trace %d: nothing arrived", idx[0])
		} else {
			example = fmt.Sprintf("trace %d: spans %v on replicas %v", idx[0], a.spans, a.replicas)
		}
	}
	return len(idx), example
}
