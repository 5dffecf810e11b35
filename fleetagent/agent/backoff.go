package agent

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Reconnects back off exponentially with jitter, from MinBackoff up to
// MaxBackoff, so that a fleet of sidecars neither hammers a server that is
// down or broken nor reconnects in step after it comes back.
//
// opamp-go's WebSocket client (v0.23.0) retries a failed dial with its own
// backoff (500 ms growing to 60 s), but starts over at once after a
// connection that was established and then lost: a server that accepts and
// then answers garbage, or closes, would be redialled in a tight loop. The
// client asks for the request headers right before each dial
// (StartSettings.HeaderFunc), so the agent paces every attempt there.
const (
	MinBackoff = time.Second
	MaxBackoff = 5 * time.Minute
)

// gate paces connection attempts.
type gate struct {
	min, max time.Duration
	// stable is how long a connection must have held for the next attempt
	// to start over at min.
	stable time.Duration
	now    func() time.Time
	jitter func() float64 // in [0, 1)
	stop   chan struct{}

	mu          sync.Mutex
	step        time.Duration // the current base delay; 0 before a failure
	lastAttempt time.Time
	connectedAt time.Time // when the last attempt connected; zero if it failed
	attempts    int
}

func newGate(stable time.Duration) *gate {
	return &gate{min: MinBackoff, max: MaxBackoff, stable: stable, now: time.Now, jitter: rand.Float64, stop: make(chan struct{})}
}

// delay is how long to wait before the next attempt, and counts it.
func (g *gate) delay() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	defer func() {
		g.attempts++
		g.connectedAt = time.Time{}
	}()
	if g.attempts == 0 {
		return 0
	}
	connected := !g.connectedAt.IsZero()
	if connected && now.Sub(g.connectedAt) >= g.stable {
		g.step = 0 // the last connection held: start over
	}
	if g.step == 0 {
		g.step = g.min
	} else {
		g.step = min(2*g.step, g.max)
	}
	// Uniform in [step/2, 3*step/2), at most max.
	d := min(g.step/2+time.Duration(g.jitter()*float64(g.step)), g.max)
	if connected {
		return d // counted from the loss of the connection, which is now
	}
	// Counted from the failed attempt: the client's own timer ran since.
	return max(0, g.lastAttempt.Add(d).Sub(now))
}

// wait blocks until the next attempt may be made (false: the agent stops).
func (g *gate) wait() bool {
	d := g.delay()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-g.stop:
			return false
		}
	}
	g.mu.Lock()
	g.lastAttempt = g.now()
	g.mu.Unlock()
	return true
}

// connected records that the last attempt connected.
func (g *gate) connected() {
	g.mu.Lock()
	g.connectedAt = g.now()
	g.mu.Unlock()
}

// attempt is the number of the current (last) attempt.
func (g *gate) attempt() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.attempts
}

// close ends every wait.
func (g *gate) close() { close(g.stop) }
