package registry

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

// FiguresReport is the data of a figures CustomMessage
// (docs/fleet-protocol.md): totals since the sidecar started.
type FiguresReport struct {
	Time           string            `json:"time"`
	LinesRead      map[string]int64  `json:"linesRead"`
	WrapperDropped map[string]int64  `json:"wrapperDropped"`
	QueueBytes     int64             `json:"queueBytes"`
	ExportFailures map[string]int64  `json:"exportFailures"`
	LastExport     map[string]string `json:"lastExport"`
}

// ParseFigures reads a figures message; the agent's maps are summed, so
// their size costs nothing kept.
func ParseFigures(data []byte) (FiguresReport, error) {
	if len(data) > MaxFiguresLen {
		return FiguresReport{}, fmt.Errorf("figures message of %d bytes, more than %d", len(data), MaxFiguresLen)
	}
	var f FiguresReport
	if err := json.Unmarshal(data, &f); err != nil {
		return FiguresReport{}, fmt.Errorf("figures message: %w", err)
	}
	return f, nil
}

// exportSignals are the keys of a report's lastExport that are kept: an
// agent cannot make the server keep more.
var exportSignals = []string{"logs", "metrics", "traces"}

// lastExports lays a report's last exports over the ones known: the latest
// time per signal (a restarted agent reports none for a signal it has not
// exported since, which does not erase the one before).
func lastExports(known map[string]time.Time, reported map[string]string) map[string]time.Time {
	for _, s := range exportSignals {
		t, err := time.Parse(time.RFC3339Nano, reported[s])
		if err != nil || !t.After(known[s]) {
			continue
		}
		if known == nil {
			known = map[string]time.Time{}
		}
		known[s] = t.UTC()
	}
	return known
}

type sample struct {
	at                              time.Time
	lines, dropped, failures, queue int64
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func sampleOf(at time.Time, f FiguresReport) sample {
	return sample{at: at, lines: sum(f.LinesRead), dropped: sum(f.WrapperDropped), failures: sum(f.ExportFailures), queue: f.QueueBytes}
}

// ring keeps the last FiguresRingSize samples, received-time order (the
// server's clock: an agent's clock skew does not bend its rates).
type ring struct {
	s    [FiguresRingSize]sample
	n    int
	head int // next write
}

func (r *ring) add(s sample) {
	r.s[r.head] = s
	r.head = (r.head + 1) % FiguresRingSize
	if r.n < FiguresRingSize {
		r.n++
	}
}

// ordered returns the samples oldest first.
func (r *ring) ordered() []sample {
	out := make([]sample, 0, r.n)
	start := (r.head - r.n + FiguresRingSize) % FiguresRingSize
	for i := range r.n {
		out = append(out, r.s[(start+i)%FiguresRingSize])
	}
	return out
}

// figures are the rates over the ring: the sum of the increases between
// consecutive samples over the time they span. A total that went down
// means the sidecar restarted: its new total is the increase.
func (r *ring) figures() api.Figures {
	s := r.ordered()
	if len(s) == 0 {
		return api.Figures{}
	}
	last := s[len(s)-1]
	f := api.Figures{At: last.at, LinesRead: last.lines, Dropped: last.dropped, ExportFailures: last.failures, QueueBytes: last.queue}
	if len(s) < 2 {
		return f
	}
	var lines, dropped, failures int64
	for i := 1; i < len(s); i++ {
		lines += increase(s[i-1].lines, s[i].lines)
		dropped += increase(s[i-1].dropped, s[i].dropped)
		failures += increase(s[i-1].failures, s[i].failures)
	}
	span := last.at.Sub(s[0].at)
	if span <= 0 {
		return f
	}
	secs := span.Seconds()
	f.LinesPerSecond = float64(lines) / secs
	f.DropsPerSecond = float64(dropped) / secs
	f.ExportFailuresPerSecond = float64(failures) / secs
	f.Window = api.Duration(span)
	return f
}

func increase(prev, cur int64) int64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}
