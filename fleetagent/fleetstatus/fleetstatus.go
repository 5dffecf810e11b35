// Package fleetstatus follows the health of the collector a sidecar runs,
// for its fleet agent: the `fleet_status` extension (added to the config by
// the supervisor, not rendered) watches every component's status events and
// the moment the pipelines are ready, and writes them to a Tracker that
// outlives the collector, so that the supervisor knows when a collector
// started with a new config is running, and the agent reports each
// component's health.
package fleetstatus

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pipeline"
)

// Type is the extension's type.
var Type = component.MustNewType("fleet_status")

// State is one component's last status.
type State struct {
	Status    string // e.g. StatusOK (componentstatus.Status)
	Healthy   bool
	Err       string
	Since     time.Time // when the component started (zero when it is not running)
	Reported  time.Time // when the status was reported
	Pipelines []string  // the pipelines it is part of, e.g. logs
}

// Snapshot is the collector's health at one moment.
type Snapshot struct {
	// Running: a collector has been started and its pipelines are ready.
	Running bool
	// Down is why no collector runs ("" when one runs or starts).
	Down string
	// Started is when the current collector began to start.
	Started time.Time
	// Components by "<kind>:<id>", e.g. "receiver:file_log".
	Components map[string]State
}

// Tracker holds the health of the collector the supervisor runs now.
type Tracker struct {
	mu       sync.Mutex
	snap     Snapshot
	onChange func()
	ready    chan struct{} // closed when the current collector is ready
}

// NewTracker returns a tracker; onChange (may be nil) is called, outside
// the tracker's lock, after every change.
func NewTracker(onChange func()) *Tracker {
	return &Tracker{onChange: onChange, ready: make(chan struct{}), snap: Snapshot{Components: map[string]State{}}}
}

// Begin is called before each start of the collector: what the previous
// one reported is forgotten.
func (t *Tracker) Begin(now time.Time) {
	t.update(func(s *Snapshot) {
		*s = Snapshot{Started: now, Components: map[string]State{}}
		t.ready = make(chan struct{})
	})
}

// Down records that no collector runs, and why (the supervisor's stand-in).
func (t *Tracker) Down(cause string) {
	t.update(func(s *Snapshot) {
		s.Running = false
		s.Down = cause
	})
}

// Ready returns a channel closed once the collector started since the
// last Begin is ready.
func (t *Tracker) Ready() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready
}

// Snapshot returns a copy of the current health.
func (t *Tracker) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.snap
	s.Components = make(map[string]State, len(t.snap.Components))
	for k, v := range t.snap.Components {
		v.Pipelines = slices.Clone(v.Pipelines)
		s.Components[k] = v
	}
	return s
}

func (t *Tracker) update(f func(*Snapshot)) {
	t.mu.Lock()
	f(&t.snap)
	t.mu.Unlock()
	if t.onChange != nil {
		t.onChange()
	}
}

func (t *Tracker) pipelinesReady(ready bool) {
	t.update(func(s *Snapshot) {
		s.Running = ready
		if ready {
			s.Down = ""
			select {
			case <-t.ready:
			default:
				close(t.ready)
			}
		}
	})
}

func (t *Tracker) changed(source *componentstatus.InstanceID, ev *componentstatus.Event) {
	key := fmt.Sprintf("%s:%s", strings.ToLower(source.Kind().String()), source.ComponentID())
	var pipes []string
	source.AllPipelineIDs(func(p pipeline.ID) bool {
		pipes = append(pipes, p.String())
		return true
	})
	sort.Strings(pipes)
	t.update(func(s *Snapshot) {
		st := s.Components[key]
		st.Status = ev.Status().String()
		st.Reported = ev.Timestamp()
		st.Healthy = ev.Status() == componentstatus.StatusOK
		st.Err = ""
		if err := ev.Err(); err != nil {
			st.Err = err.Error()
		}
		switch ev.Status() {
		case componentstatus.StatusStarting:
			st.Since = time.Time{}
		case componentstatus.StatusOK:
			if st.Since.IsZero() {
				st.Since = ev.Timestamp()
			}
		case componentstatus.StatusStopped, componentstatus.StatusPermanentError, componentstatus.StatusFatalError:
			st.Since = time.Time{}
		}
		// A shared receiver (otlp) reports once per pipeline: keep them all.
		for _, p := range pipes {
			if !slices.Contains(st.Pipelines, p) {
				st.Pipelines = append(st.Pipelines, p)
			}
		}
		sort.Strings(st.Pipelines)
		s.Components[key] = st
	})
}

// NewFactory returns the extension's factory, writing to t.
func NewFactory(t *Tracker) extension.Factory {
	return extension.NewFactory(Type,
		func() component.Config { return &struct{}{} },
		func(context.Context, extension.Settings, component.Config) (extension.Extension, error) {
			return &watcher{t: t}, nil
		},
		component.StabilityLevelBeta)
}

type watcher struct{ t *Tracker }

func (*watcher) Start(context.Context, component.Host) error { return nil }
func (*watcher) Shutdown(context.Context) error              { return nil }

// ComponentStatusChanged implements componentstatus.Watcher.
func (w *watcher) ComponentStatusChanged(source *componentstatus.InstanceID, ev *componentstatus.Event) {
	w.t.changed(source, ev)
}

// Ready implements extensioncapabilities.PipelineWatcher: every pipeline runs.
func (w *watcher) Ready() error {
	w.t.pipelinesReady(true)
	return nil
}

// NotReady is called when the collector begins to stop.
func (w *watcher) NotReady() error {
	w.t.pipelinesReady(false)
	return nil
}

// NewConverter returns a config converter that adds the extension to any
// config, so that the rendered config (what the pod's status annotation and
// the agent's reports name) stays what the pod's settings give.
func NewConverter() confmap.ConverterFactory {
	return confmap.NewConverterFactory(func(confmap.ConverterSettings) confmap.Converter { return converter{} })
}

type converter struct{}

func (converter) Convert(_ context.Context, conf *confmap.Conf) error {
	id := Type.String()
	var list []any
	if v, ok := conf.Get("service::extensions").([]any); ok {
		list = slices.Clone(v)
	}
	for _, e := range list {
		if e == id {
			return nil
		}
	}
	list = append(list, id)
	return conf.Merge(confmap.NewFromStringMap(map[string]any{
		"extensions": map[string]any{id: map[string]any{}},
		"service":    map[string]any{"extensions": list},
	}))
}
