package fleetstatus

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/collector/pipeline"
)

func TestTheConverterAddsTheExtensionOnce(t *testing.T) {
	conf := confmap.NewFromStringMap(map[string]any{
		"extensions": map[string]any{"health_check": map[string]any{"endpoint": ":13133"}},
		"service":    map[string]any{"extensions": []any{"health_check"}, "pipelines": map[string]any{"logs": map[string]any{}}},
	})
	c := NewConverter().Create(confmap.ConverterSettings{})
	for range 2 {
		if err := c.Convert(context.Background(), conf); err != nil {
			t.Fatal(err)
		}
	}
	if got := conf.Get("service::extensions"); !slices.Equal(got.([]any), []any{"health_check", "fleet_status"}) {
		t.Fatalf("service::extensions = %v", got)
	}
	if !conf.IsSet("extensions::fleet_status") || conf.Get("extensions::health_check::endpoint") != ":13133" || !conf.IsSet("service::pipelines::logs") {
		t.Fatalf("config %v", conf.ToStringMap())
	}
}

func TestTheTrackerFollowsOneCollector(t *testing.T) {
	var changes atomic.Int32
	tr := NewTracker(func() { changes.Add(1) })
	ext, err := NewFactory(tr).Create(context.Background(), extension.Settings{ID: component.NewID(Type)}, &struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	w := ext.(componentstatus.Watcher)
	pw := ext.(extensioncapabilities.PipelineWatcher)

	tr.Begin(time.Now())
	ready := tr.Ready()
	fl := componentstatus.NewInstanceID(component.MustNewID("file_log"), component.KindReceiver, pipeline.NewID(pipeline.SignalLogs))
	otlp := componentstatus.NewInstanceID(component.MustNewID("otlp"), component.KindReceiver, pipeline.NewID(pipeline.SignalLogs), pipeline.NewID(pipeline.SignalTraces))
	w.ComponentStatusChanged(fl, componentstatus.NewEvent(componentstatus.StatusStarting))
	w.ComponentStatusChanged(fl, componentstatus.NewEvent(componentstatus.StatusOK))
	w.ComponentStatusChanged(otlp, componentstatus.NewRecoverableErrorEvent(errors.New("busy")))
	select {
	case <-ready:
		t.Fatal("ready before the pipelines are")
	default:
	}
	if err := pw.Ready(); err != nil {
		t.Fatal(err)
	}
	<-ready
	s := tr.Snapshot()
	if !s.Running || s.Components["receiver:file_log"].Since.IsZero() || !s.Components["receiver:file_log"].Healthy {
		t.Fatalf("snapshot %+v", s)
	}
	if o := s.Components["receiver:otlp"]; o.Healthy || o.Err != "busy" || !slices.Equal(o.Pipelines, []string{"logs", "traces"}) {
		t.Fatalf("otlp %+v", o)
	}
	if changes.Load() < 4 {
		t.Fatalf("%d changes reported", changes.Load())
	}

	// The next start forgets it all.
	tr.Begin(time.Now())
	if s := tr.Snapshot(); s.Running || len(s.Components) != 0 {
		t.Fatalf("after Begin: %+v", s)
	}
	select {
	case <-tr.Ready():
		t.Fatal("the next collector is ready before it started")
	default:
	}
	tr.Down("cannot bind")
	if s := tr.Snapshot(); s.Down != "cannot bind" || s.Running {
		t.Fatalf("down: %+v", s)
	}
}
