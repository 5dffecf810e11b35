package crioperator

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/featuregate"
	"go.uber.org/zap"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/entry"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator/parser/container"
)

// The distribution runs file_log with the synchronous log emitter (see
// defaults.go of the collector): upstream's container operator is compared
// as it runs there.
func TestMain(m *testing.M) {
	if err := featuregate.GlobalRegistry().Set("stanza.synchronousLogEmitter", true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// sink is the next operator: it keeps what it is given, in order.
type sink struct {
	mu    sync.Mutex
	got   []*entry.Entry
	block chan struct{} // when set, every write waits for it to close
	in    chan struct{} // signalled when a write starts waiting on block
}

func (*sink) ID() string                           { return "sink" }
func (*sink) Type() string                         { return "sink" }
func (*sink) Start(operator.Persister) error       { return nil }
func (*sink) Stop() error                          { return nil }
func (*sink) CanOutput() bool                      { return false }
func (*sink) Outputs() []operator.Operator         { return nil }
func (*sink) GetOutputIDs() []string               { return nil }
func (*sink) SetOutputs([]operator.Operator) error { return nil }
func (*sink) SetOutputIDs([]string)                {}
func (*sink) CanProcess() bool                     { return true }
func (*sink) Logger() *zap.Logger                  { return zap.NewNop() }

func (s *sink) ProcessBatch(_ context.Context, es []*entry.Entry) error {
	if s.block != nil {
		if s.in != nil {
			select {
			case s.in <- struct{}{}:
			default:
			}
		}
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, es...)
	return nil
}

func (s *sink) Process(ctx context.Context, e *entry.Entry) error {
	return s.ProcessBatch(ctx, []*entry.Entry{e})
}

func (s *sink) take() []*entry.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// upstreamOp is the contrib container operator as the sidecar configured
// it before: format containerd, add_metadata_from_filepath (its default).
func upstreamOp(t testing.TB, out *sink) operator.Operator {
	t.Helper()
	cfg := container.NewConfigWithID("upstream")
	cfg.Format = "containerd"
	cfg.OutputIDs = []string{out.ID()}
	op, err := cfg.Build(componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := op.SetOutputs([]operator.Operator{out}); err != nil {
		t.Fatal(err)
	}
	if err := op.Start(nil); err != nil {
		t.Fatal(err)
	}
	return op
}

// ourOp is container_cri with the given changes to its defaults.
func ourOp(t testing.TB, out *sink, change func(*Config)) *Operator {
	t.Helper()
	cfg := NewConfigWithID("ours")
	cfg.OutputIDs = []string{out.ID()}
	if change != nil {
		change(cfg)
	}
	op, err := cfg.Build(componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := op.SetOutputs([]operator.Operator{out}); err != nil {
		t.Fatal(err)
	}
	if err := op.Start(nil); err != nil {
		t.Fatal(err)
	}
	return op.(*Operator)
}

// noFlush keeps our force flush out of comparisons that take no time:
// upstream's first flush check comes 5 s after it was built.
func noFlush(c *Config) { c.ForceFlushPeriod = time.Hour }

// run feeds batches (copies of them) to op, as file_log's reader would,
// one ProcessBatch per batch (or one Process per entry), and returns what
// came out while feeding and what came out of Stop.
func run(t testing.TB, op operator.Operator, out *sink, batches [][]*entry.Entry, single bool) (fed, stopped []*entry.Entry) {
	t.Helper()
	ctx := context.Background()
	for _, b := range batches {
		cp := make([]*entry.Entry, len(b))
		for i, e := range b {
			cp[i] = e.Copy()
		}
		if single {
			for _, e := range cp {
				_ = op.Process(ctx, e)
			}
		} else {
			_ = op.ProcessBatch(ctx, cp)
		}
	}
	fed = out.take()
	if err := op.Stop(); err != nil {
		t.Fatal(err)
	}
	return fed, out.take()
}

// render is a record as text, every field that reaches the exporter.
func render(e *entry.Entry) string {
	ts := "none"
	if !e.Timestamp.IsZero() {
		ts = e.Timestamp.Format(time.RFC3339Nano) + "@" + e.Timestamp.Location().String()
	}
	return fmt.Sprintf("body=%s time=%s observed=%d attributes=%s resource=%s severity=%v/%q scope=%q trace=%x/%x/%x",
		renderBody(e.Body), ts, e.ObservedTimestamp.UnixNano(), renderMap(e.Attributes), renderMap(e.Resource),
		e.Severity, e.SeverityText, e.ScopeName, e.TraceID, e.SpanID, e.TraceFlags)
}

// renderBody quotes a body, or names a long one by its length and hash.
func renderBody(b any) string {
	if s, ok := b.(string); ok && len(s) > 256 {
		return fmt.Sprintf("string(%d bytes, sha256 %x, %q...%q)", len(s), sha256.Sum256([]byte(s)), s[:32], s[len(s)-32:])
	}
	return fmt.Sprintf("%#v", b)
}

func renderMap(m map[string]any) string {
	if m == nil {
		return "nil"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%#v", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}

func renderAll(es []*entry.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = render(e)
	}
	return out
}

// sameRecords fails t unless want and got are the same records in the
// same order (or in any order when sorted is set).
func sameRecords(t testing.TB, what string, want, got []*entry.Entry, sorted bool) {
	t.Helper()
	w, g := renderAll(want), renderAll(got)
	if sorted {
		slices.Sort(w)
		slices.Sort(g)
	}
	if slices.Equal(w, g) {
		return
	}
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			t.Fatalf("%s: %d records upstream, %d ours; the first difference, record %d:\nupstream: %s\nours:     %s",
				what, len(w), len(g), i, clip(a), clip(b))
		}
	}
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:300] + fmt.Sprintf("...(%d bytes)...", len(s)-600) + s[len(s)-300:]
	}
	return s
}

// newEntry is what file_log's reader makes of a line: the body, the
// observed time and the file's path (path nil: no attributes at all).
func newEntry(path any, body any, observed time.Time) *entry.Entry {
	e := entry.New()
	e.ObservedTimestamp = observed
	e.Body = body
	if path != nil {
		e.Attributes = map[string]any{attrPath: path}
	}
	return e
}
