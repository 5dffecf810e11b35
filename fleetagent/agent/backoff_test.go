package agent

import (
	"math/rand/v2"
	"testing"
	"time"
)

// clock is a hand-moved time for the gate.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func testGate(jitter float64) (*gate, *clock) {
	c := &clock{t: time.Unix(1000, 0)}
	g := newGate(30 * time.Second)
	g.now = c.now
	g.jitter = func() float64 { return jitter }
	return g, c
}

// attempt is one connection attempt made after the gate's delay.
func attempt(g *gate, c *clock, connected bool) time.Duration {
	d := g.delay()
	c.t = c.t.Add(d)
	g.mu.Lock()
	g.lastAttempt = c.t
	g.mu.Unlock()
	if connected {
		g.connected()
	}
	return d
}

func TestTheGateBacksOffAndStartsOverAfterAGoodConnection(t *testing.T) {
	g, c := testGate(0.5) // no jitter: the middle of [step/2, 3step/2)
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if d := attempt(g, c, false); d != w {
			t.Fatalf("attempt %d: delay %s, want %s", i+1, d, w)
		}
	}
	// Up to the cap.
	var d time.Duration
	for range 20 {
		d = attempt(g, c, false)
	}
	if d != MaxBackoff {
		t.Fatalf("delay %s, want the cap %s", d, MaxBackoff)
	}

	// A connection that is lost at once (a server answering garbage) does
	// not start over: the next step.
	g, c = testGate(0.5)
	attempt(g, c, true)
	c.t = c.t.Add(100 * time.Millisecond)
	if d := attempt(g, c, true); d != time.Second {
		t.Fatalf("after a connection lost at once: %s, want 1s", d)
	}
	c.t = c.t.Add(100 * time.Millisecond)
	if d := attempt(g, c, true); d != 2*time.Second {
		t.Fatalf("after a second connection lost at once: %s, want 2s", d)
	}
	// One that held starts over at the first step.
	c.t = c.t.Add(time.Minute)
	if d := attempt(g, c, false); d != time.Second {
		t.Fatalf("after a connection that held: %s, want 1s", d)
	}
}

func TestTheGateCountsFromTheFailedAttempt(t *testing.T) {
	g, c := testGate(0.5)
	attempt(g, c, false)
	// The client's own timer already waited 700ms of the 1s.
	c.t = c.t.Add(700 * time.Millisecond)
	if d := g.delay(); d != 300*time.Millisecond {
		t.Fatalf("delay %s, want the 300ms left", d)
	}
}

func TestTheGateJitters(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 50 {
		g, c := testGate(0)
		g.jitter = rand.Float64
		attempt(g, c, false)
		d := g.delay()
		if d < 500*time.Millisecond || d >= 1500*time.Millisecond {
			t.Fatalf("first retry in %s, want [0.5s, 1.5s)", d)
		}
		seen[d.Round(10*time.Millisecond)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 50 gates: no jitter", len(seen))
	}
}

func TestAClosedGateEndsTheWait(t *testing.T) {
	g, _ := testGate(0.5)
	g.delay()
	g.now = time.Now
	g.mu.Lock()
	g.lastAttempt = time.Now()
	g.step = time.Hour
	g.mu.Unlock()
	done := make(chan bool)
	go func() { done <- g.wait() }()
	g.close()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("the wait said go on after the agent stopped")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not end the wait")
	}
}
