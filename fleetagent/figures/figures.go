// Package figures counts what a sidecar's collector does, in-process and
// without a metrics listener, for the fleet agent's reports: the lines
// file_log read per container and stream, the lines the wrapper reported as
// dropped, the failed exports and the last successful one per signal, and
// the bytes the sending queues hold on disk.
//
// The counts are totals since the process started: they live in one Figures
// that outlives every collector the supervisor runs (a live config swap
// starts a new collector, not a new process), and the components of each
// collector count into it through wrapped factories (WrapFileLog,
// WrapExporter).
package figures

import (
	"context"
	"maps"
	"sync"
	"time"
)

// MaxKeys bounds each map of a report, so that a report stays small whatever
// the pod runs; what goes past it is counted under OtherKey.
const MaxKeys = 64

// OtherKey collects the counts past MaxKeys.
const OtherKey = "other"

// Signals the exporters count for.
var Signals = []string{"logs", "metrics", "traces"}

// Figures are one process's counts. The zero value is not usable: New.
type Figures struct {
	mu             sync.Mutex
	linesRead      map[string]int64
	wrapperDropped map[string]int64
	exportFailures map[string]int64
	lastExport     map[string]time.Time

	// queueBytes reads what the queues on disk hold; nil means none.
	queueBytes func(context.Context) int64
}

// New returns empty figures; queueBytes (may be nil) reads the bytes the
// sending queues hold on disk when a report is made.
func New(queueBytes func(context.Context) int64) *Figures {
	f := &Figures{
		linesRead:      map[string]int64{},
		wrapperDropped: map[string]int64{},
		exportFailures: map[string]int64{},
		lastExport:     map[string]time.Time{},
		queueBytes:     queueBytes,
	}
	for _, s := range Signals {
		f.exportFailures[s] = 0
	}
	return f
}

// Report is the figures as the agent sends them (JSON, docs/fleet-protocol.md).
type Report struct {
	Time           string           `json:"time"`
	LinesRead      map[string]int64 `json:"linesRead"`
	WrapperDropped map[string]int64 `json:"wrapperDropped"`
	QueueBytes     int64            `json:"queueBytes"`
	ExportFailures map[string]int64 `json:"exportFailures"`
	// LastExport is the time of the last successful export per signal
	// (RFC 3339, UTC), "" when there was none.
	LastExport map[string]string `json:"lastExport"`
}

// Report returns the figures at now.
func (f *Figures) Report(ctx context.Context, now time.Time) Report {
	var queued int64
	if f.queueBytes != nil {
		queued = f.queueBytes(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := Report{
		Time:           now.UTC().Format(time.RFC3339),
		LinesRead:      maps.Clone(f.linesRead),
		WrapperDropped: maps.Clone(f.wrapperDropped),
		QueueBytes:     queued,
		ExportFailures: maps.Clone(f.exportFailures),
		LastExport:     map[string]string{},
	}
	for _, s := range Signals {
		r.LastExport[s] = ""
	}
	for s, t := range f.lastExport {
		r.LastExport[s] = t.UTC().Format(time.RFC3339Nano)
	}
	return r
}

// addTo adds n to m[key], keeping m within MaxKeys. Callers hold f.mu.
func addTo(m map[string]int64, key string, n int64) {
	if _, ok := m[key]; !ok && len(m) >= MaxKeys {
		key = OtherKey
	}
	m[key] += n
}

// lines adds what one batch of file_log held.
func (f *Figures) lines(read, dropped map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range read {
		addTo(f.linesRead, k, n)
	}
	for k, n := range dropped {
		addTo(f.wrapperDropped, k, n)
	}
}

// exported records the outcome of one export of signal.
func (f *Figures) exported(signal string, sent, failed int64, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if failed > 0 {
		addTo(f.exportFailures, signal, failed)
	}
	if sent > 0 && at.After(f.lastExport[signal]) {
		f.lastExport[signal] = at
	}
}
