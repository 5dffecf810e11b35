package crioperator

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/entry"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A last line without newline (containerd writes it as P) is not held:
// after force_flush_period both operators send it alone, as it is, and
// not before.
func TestAPieceWithoutItsFIsSentAfterTheForceFlushPeriod(t *testing.T) {
	t.Parallel()
	upOut, ourOut := &sink{}, &sink{}
	up := upstreamOp(t, upOut)
	ours := ourOp(t, ourOut, nil) // the default period, upstream's 5 s
	defer func() { _ = up.Stop(); _ = ours.Stop() }()
	sent := time.Now()
	in := lines(appLog, ts1+" stdout P a prompt without newline: ")
	for _, op := range []operator.Operator{up, ours} {
		if err := op.ProcessBatch(context.Background(), []*entry.Entry{in[0].Copy()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "both operators send the pending piece", func() bool { return upOut.len() == 1 && ourOut.len() == 1 })
	got := ourOut.take()
	if waited := time.Since(sent); waited < defaultForceFlushPeriod {
		t.Errorf("sent after %s, before the force flush period (%s)", waited, defaultForceFlushPeriod)
	}
	sameRecords(t, "the flushed piece", upOut.take(), got, false)
}

func TestTheForceFlushKeepsAPieceForItsPeriod(t *testing.T) {
	out := &sink{}
	op := ourOp(t, out, func(c *Config) { c.ForceFlushPeriod = 200 * time.Millisecond })
	defer func() { _ = op.Stop() }()
	start := time.Now()
	if err := op.ProcessBatch(context.Background(), lines(appLog, ts1+" stdout P alone", ts1+" stderr F whole")); err != nil {
		t.Fatal(err)
	}
	if n := out.len(); n != 1 {
		t.Fatalf("%d records right away, want only the whole line", n)
	}
	waitFor(t, 5*time.Second, "the piece is sent", func() bool { return out.len() == 2 })
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("the piece was sent after %s, before its period", waited)
	}
	got := out.take()
	if got[1].Body != "alone" || got[1].Attributes[attrLogtag] != "P" {
		t.Errorf("flushed record = %s", render(got[1]))
	}
	if n := len(op.pending); n != 0 {
		t.Errorf("%d partials still pending", n)
	}
}

func TestStopSendsWhatIsPending(t *testing.T) {
	out := &sink{}
	op := ourOp(t, out, noFlush)
	if err := op.ProcessBatch(context.Background(), lines(appLog, ts1+" stdout P one", ts1+" stderr P two")); err != nil {
		t.Fatal(err)
	}
	if err := op.Stop(); err != nil {
		t.Fatal(err)
	}
	got := out.take()
	if len(got) != 2 || got[0].Body != "one" || got[1].Body != "two" {
		t.Fatalf("at Stop: %v", renderAll(got))
	}
	if err := op.Stop(); err != nil { // a second Stop does nothing
		t.Fatal(err)
	}
}

// An output that never takes what it is given (a pipeline refusing data
// with retries without end, say) holds neither Stop nor, through it, the
// collector's shutdown: not when Stop's own flush blocks, nor when the
// force flush is blocked already.
func TestStopIsBoundedWhenTheOutputBlocks(t *testing.T) {
	for _, c := range []struct {
		name       string
		flushFirst bool
	}{{"Stop's flush blocks", false}, {"the force flush blocks", true}} {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			out := &sink{block: release, in: make(chan struct{}, 1)}
			op := ourOp(t, out, func(cfg *Config) {
				cfg.ForceFlushPeriod = time.Hour
				if c.flushFirst {
					cfg.ForceFlushPeriod = 20 * time.Millisecond
				}
			})
			op.stopWait = 100 * time.Millisecond
			// Not through ProcessBatch: that one would block on the sink.
			op.mu.Lock()
			e := lines(appLog, ts1+" stdout P stuck")[0]
			src, last, err := op.parse(e)
			if err != nil || last {
				t.Fatal(err)
			}
			op.join(e, src, last, nil)
			op.mu.Unlock()
			if c.flushFirst {
				select {
				case <-out.in:
				case <-time.After(10 * time.Second):
					t.Fatal("the force flush did not start writing")
				}
			}
			stopped := make(chan struct{})
			go func() { _ = op.Stop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				t.Fatal("Stop is held by an output that blocks")
			}
		})
	}
}

func TestConfig(t *testing.T) {
	b, ok := operator.Lookup(Type)
	if !ok {
		t.Fatalf("%s is not registered", Type)
	}
	cfg, ok := b().(*Config)
	if !ok || !cfg.AddMetadataFromFilePath || cfg.MaxLogSize != 1<<20 || cfg.ForceFlushPeriod != 5*time.Second || cfg.MaxSources != 1000 || cfg.OnError != "send" {
		t.Fatalf("defaults = %+v", b())
	}
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.ForceFlushPeriod = 0 }, "force_flush_period is 0s: give a positive duration"},
		{func(c *Config) { c.MaxSources = 0 }, "max_sources is 0: give a positive number"},
		{func(c *Config) { c.MaxLogSize = -1 }, "max_log_size is -1"},
		{func(c *Config) { c.OnError = "panic" }, "on_error"},
	} {
		cfg := NewConfig()
		c.change(cfg)
		_, err := cfg.Build(componenttest.NewNopTelemetrySettings())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Build = %v, want an error with %q", err, c.want)
		}
	}
}

// max_sources bounds the partials kept: past it, all are sent.
func TestMaxSources(t *testing.T) {
	out := &sink{}
	op := ourOp(t, out, func(c *Config) { noFlush(c); c.MaxSources = 2 })
	defer func() { _ = op.Stop() }()
	ctx := context.Background()
	for _, p := range []string{"/a/0.log", "/b/0.log", "/c/0.log"} {
		if err := op.ProcessBatch(ctx, lines(podDir+p, ts1+" stdout P "+p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := out.take(); len(got) != 2 || len(op.pending) != 1 {
		t.Fatalf("sent %v with %d pending, want the 2 oldest sent and 1 pending", renderAll(got), len(op.pending))
	}
}
