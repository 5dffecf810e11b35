package drain

import (
	"slices"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pipeline"
)

// TestPendingNamesWhatHasNotStopped: a component is pending from its
// Stopping event to its Stopped (or error) event; the drain's own wait
// comes first while it lasts.
func TestPendingNamesWhatHasNotStopped(t *testing.T) {
	p := &shutdownProgress{stopping: map[string]bool{}}
	saved := progress
	progress = p
	defer func() { progress = saved }()

	ks := componentstatus.NewInstanceID(component.MustNewID("kubelet_stats"), component.KindReceiver, pipeline.NewID(pipeline.SignalMetrics))
	fl := componentstatus.NewInstanceID(component.MustNewID("file_log"), component.KindReceiver, pipeline.NewID(pipeline.SignalLogs))
	d := &drainer{}
	d.ComponentStatusChanged(ks, componentstatus.NewEvent(componentstatus.StatusStopping))
	d.ComponentStatusChanged(fl, componentstatus.NewEvent(componentstatus.StatusStopping))
	d.ComponentStatusChanged(fl, componentstatus.NewEvent(componentstatus.StatusStopped))
	p.setDrain("file_log: 1 of 2 polls since the stop began")

	want := []string{
		"drain: file_log: 1 of 2 polls since the stop began",
		"receiver kubelet_stats (pipelines: metrics): its shutdown has not returned",
	}
	if got := Pending(); !slices.Equal(got, want) {
		t.Fatalf("Pending() = %q, want %q", got, want)
	}
	p.setDrain("")
	d.ComponentStatusChanged(ks, componentstatus.NewPermanentErrorEvent(nil))
	if got := Pending(); len(got) != 0 {
		t.Fatalf("Pending() = %q after every shutdown ended", got)
	}
}
