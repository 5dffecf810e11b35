package drain

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/pipeline"
)

// A shutdown that does not end is cut short by the process (the sidecar's
// hard stop, before the kubelet's SIGKILL), which then says what it was
// still waiting for. The drain extension sees it: the service tells every
// extension that watches component status when each component begins and
// ends its shutdown, and the drain knows what its own wait is missing.

// progress is this process's shutdown as the drain extension saw it.
var progress = &shutdownProgress{stopping: map[string]bool{}}

type shutdownProgress struct {
	mu       sync.Mutex
	stopping map[string]bool // components whose Shutdown has begun, not ended
	drain    string          // what the drain still waits for, while it does
}

// Pending lists what a stopping collector still waits for: the drain's
// pending work while it runs, then every component whose shutdown has
// begun and not ended. It is empty when no drain extension runs.
func Pending() []string {
	progress.mu.Lock()
	defer progress.mu.Unlock()
	var out []string
	if progress.drain != "" {
		out = append(out, "drain: "+progress.drain)
	}
	var comps []string
	for c := range progress.stopping {
		comps = append(comps, c+": its shutdown has not returned")
	}
	slices.Sort(comps)
	return append(out, comps...)
}

func (p *shutdownProgress) setDrain(pending string) {
	p.mu.Lock()
	p.drain = pending
	p.mu.Unlock()
}

func (p *shutdownProgress) changed(source *componentstatus.InstanceID, event *componentstatus.Event) {
	name := instanceName(source)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch event.Status() {
	case componentstatus.StatusStopping:
		p.stopping[name] = true
	case componentstatus.StatusStopped, componentstatus.StatusPermanentError, componentstatus.StatusFatalError:
		delete(p.stopping, name)
	}
}

// instanceName is e.g. "receiver kubelet_stats (pipelines: metrics)".
func instanceName(id *componentstatus.InstanceID) string {
	var pipes []string
	id.AllPipelineIDs(func(p pipeline.ID) bool {
		pipes = append(pipes, p.String())
		return true
	})
	slices.Sort(pipes)
	name := fmt.Sprintf("%s %s", strings.ToLower(id.Kind().String()), id.ComponentID())
	if len(pipes) > 0 {
		name += " (pipelines: " + strings.Join(pipes, ", ") + ")"
	}
	return name
}
