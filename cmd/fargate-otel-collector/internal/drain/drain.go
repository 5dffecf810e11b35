// Package drain holds a stopping collector back until a pod's last
// telemetry is sent.
//
// A sidecar collector stops for good when its pod ends, and at v0.159.0 a
// collector that stops loses two things: what file_log has not read yet (it
// polls every 200 ms and does not read once more on shutdown) and what waits
// in a sending queue on disk (its consumers stop at once and leave the rest
// for a next start that never comes). The drain extension closes that gap
// without changing upstream code: the service calls every extension's
// NotReady before it shuts the pipelines down, and the drain's NotReady
// returns only when file_log has saved offsets at the end of every file
// (two checkpoints taken after the stop began, so that a poll started after
// it) and every queue on disk is empty and quiet, or when the timeout has
// passed. A native sidecar gets SIGTERM only after the app containers have
// exited, so no line is written after the drain begins.
//
// It watches the clients of the distribution's file_storage (WrapStorage):
// without it, there is nothing to wait for and NotReady returns at once.
package drain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
)

// Type is the extension's type in a collector config.
var Type = component.MustNewType("drain")

// DefaultTimeout bounds the drain when the config does not: below the
// default termination grace period (30s), with room for the shutdown that
// follows.
const DefaultTimeout = 20 * time.Second

const (
	// pollEvery is how often the drain checks the files and queues.
	pollEvery = 50 * time.Millisecond
	// quiet is how long a queue must have had no write before it counts as
	// drained: the batch processor sends what it holds within its timeout
	// (200ms by default), into the queue.
	quiet = 300 * time.Millisecond
	// checkpointsAfterStop is how many file_log checkpoints must follow the
	// start of the drain: the second belongs to a poll that began after it.
	checkpointsAfterStop = 2
)

// Config is the drain extension's settings.
type Config struct {
	// Timeout is the longest a stopping collector waits for its last data
	// to be read and sent; keep it below the pod's grace period.
	Timeout time.Duration `mapstructure:"timeout"`
	// Hold is how long file_log's operators may keep a record they have
	// read before they hand it on (recombine waits that long for the lines
	// that may continue a stack trace): once every file is read to its
	// end, the queues count as sent only after Hold, so that the records
	// held reach them. 0: no operator holds records.
	Hold time.Duration `mapstructure:"hold"`
}

// Validate checks the timeout.
func (c *Config) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("drain: timeout %s must be positive (e.g. %s, below the pod's terminationGracePeriodSeconds)", c.Timeout, DefaultTimeout)
	}
	if c.Hold < 0 {
		return fmt.Errorf("drain: hold %s must not be negative (0 when no operator holds records)", c.Hold)
	}
	return nil
}

// NewFactory is the drain extension's factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type,
		func() component.Config { return &Config{Timeout: DefaultTimeout} },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			c := cfg.(*Config)
			return &drainer{timeout: c.Timeout, hold: c.Hold, log: set.Logger}, nil
		},
		component.StabilityLevelBeta)
}

type drainer struct {
	timeout time.Duration
	hold    time.Duration
	log     *zap.Logger
	host    component.Host
	ready   atomic.Bool
}

func (d *drainer) Start(_ context.Context, host component.Host) error {
	d.host = host
	return nil
}

func (*drainer) Shutdown(context.Context) error { return nil }

// ComponentStatusChanged follows each component's shutdown, so that a
// shutdown cut short can say what it was waiting for (Pending).
func (*drainer) ComponentStatusChanged(source *componentstatus.InstanceID, event *componentstatus.Event) {
	progress.changed(source, event)
}

// Ready is called once every pipeline runs.
func (d *drainer) Ready() error {
	d.ready.Store(true)
	return nil
}

// NotReady is called before the pipelines shut down: it waits for the
// drain. It never fails: the shutdown goes on whatever happens here.
func (d *drainer) NotReady() error {
	if !d.ready.Swap(false) {
		return nil // the collector did not start: nothing ran, nothing to send
	}
	var storages []*watchedStorage
	for _, ext := range d.host.GetExtensions() {
		if s, ok := ext.(*watchedStorage); ok {
			storages = append(storages, s)
		}
	}
	if keep, swap := takeSwap(); swap && !ending() {
		if podEnding := d.swapDrain(storages, keep); !podEnding {
			return nil
		}
		d.log.Info("Drain: the pod ends during a config swap; waiting for everything to be sent")
	}
	if len(storages) == 0 {
		d.log.Info("Drain: no file_storage, so no offsets or queues on disk to wait for")
		return nil
	}
	w := newWait(storages, time.Now())
	w.hold = d.hold
	deadline := w.start.Add(d.timeout)
	defer progress.setDrain("")
	for {
		st := w.check(context.Background(), time.Now())
		progress.setDrain(st.String())
		if st.done() {
			d.log.Info("Drain: every log file read to its end and every queue on disk sent",
				zap.Int("files", st.files), zap.Int("queues", st.queues),
				zap.Duration("elapsed", time.Since(w.start).Round(time.Millisecond)))
			return nil
		}
		if !time.Now().Before(deadline) {
			d.log.Warn("Drain: timeout passed with data not sent; it is lost if the pod ends (is the exporter's destination reachable?)",
				zap.Duration("timeout", d.timeout), zap.Strings("pending", st.pending))
			return nil
		}
		time.Sleep(pollEvery)
	}
}

// wait is one drain: what was true when it began.
type wait struct {
	start    time.Time
	storages []*watchedStorage
	// base is each file_log client's checkpoint count at the start.
	base map[*client]int64
	// hold is Config.Hold; read is when every file was first seen read to
	// its end (zero while some file is not).
	hold time.Duration
	read time.Time
}

func newWait(storages []*watchedStorage, start time.Time) *wait {
	w := &wait{start: start, storages: storages, base: map[*client]int64{}}
	for _, s := range storages {
		for _, c := range s.openClients() {
			w.base[c] = c.checkpoints.Load()
		}
	}
	return w
}

// status is what a check found.
type status struct {
	files, queues int
	pending       []string
}

func (s status) done() bool { return len(s.pending) == 0 }

// check looks at every file_log and every queue on disk once.
func (w *wait) check(ctx context.Context, now time.Time) status {
	var st status
	var queues []string
	for _, s := range w.storages {
		for _, c := range s.openClients() {
			switch {
			case c.isFileLog():
				n, why := w.fileLogDone(ctx, c)
				st.files += n
				st.pending = append(st.pending, why...)
			case c.isQueue():
				st.queues++
				if why := queueDone(ctx, c, w.start, now); why != "" {
					queues = append(queues, why)
				}
			}
		}
	}
	// Records file_log's operators hold are handed on within hold of the
	// moment every file was read: until then the queues may get more.
	switch {
	case len(st.pending) > 0:
		w.read = time.Time{}
	case w.read.IsZero():
		w.read = now
	}
	if w.hold > 0 && len(st.pending) == 0 && now.Sub(w.read) < w.hold {
		st.pending = append(st.pending, fmt.Sprintf("every file read; waiting %s for the records file_log's operators hold", w.hold))
	}
	st.pending = append(st.pending, queues...)
	return st
}

// fileLogDone returns the files c's receiver has read to their end, and
// what is still unread.
func (w *wait) fileLogDone(ctx context.Context, c *client) (int, []string) {
	if after := c.checkpoints.Load() - w.base[c]; after < checkpointsAfterStop {
		return 0, []string{fmt.Sprintf("%s: %d of %d polls since the stop began", c, after, checkpointsAfterStop)}
	}
	key := c.checkpointKey.Load()
	if key == nil {
		return 0, []string{fmt.Sprintf("%s: no offsets saved", c)}
	}
	raw, err := c.Get(ctx, *key)
	if err != nil {
		return 0, []string{fmt.Sprintf("%s: read its offsets: %v", c, err)}
	}
	offsets, err := decodeCheckpoint(raw)
	if err != nil {
		// Another encoding (a feature gate): the polls since the stop
		// began have read every file to its end all the same.
		return 0, nil
	}
	read, unread := 0, []string(nil)
	for _, o := range offsets {
		fi, err := os.Stat(o.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away and deleted: nothing left to read
		}
		if err != nil {
			unread = append(unread, fmt.Sprintf("%s: %v", o.Path, err))
			continue
		}
		if o.Offset < fi.Size() {
			unread = append(unread, fmt.Sprintf("%s: read %d of %d bytes", o.Path, o.Offset, fi.Size()))
			continue
		}
		read++
	}
	return read, unread
}

// queueDone says what c's queue still holds ("" when it is empty and has
// been quiet long enough for a batch processor to have flushed into it).
func queueDone(ctx context.Context, c *client, start, now time.Time) string {
	raw, err := c.Get(ctx, queueMetadataKey)
	if err != nil {
		return fmt.Sprintf("%s: read its queue: %v", c, err)
	}
	q, err := decodeQueue(raw)
	if err != nil {
		return fmt.Sprintf("%s: %v", c, err)
	}
	if !q.Empty() {
		return fmt.Sprintf("%s: %d requests (%d items, %d bytes) not sent", c, q.Requests(), q.Items, q.Bytes)
	}
	last := time.Unix(0, c.lastWrite.Load())
	if now.Sub(start) < quiet || now.Sub(last) < quiet {
		return fmt.Sprintf("%s: empty, waiting %s for a late batch", c, quiet)
	}
	return ""
}

// String lists pending work on one line (for tests and logs).
func (s status) String() string { return strings.Join(s.pending, "; ") }
