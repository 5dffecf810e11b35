package drain

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The drain exists for the pod's end, when nothing runs after this
// collector. A live config swap is different: the sidecar starts the next
// collector at once, from the offsets file_log saved and with the queues on
// disk of every exporter it keeps, so waiting for the files to be read to
// their end or for those queues to empty would only delay the swap (and
// under a steady stream the files never are at their end). What a swap
// must not leave behind is the queue on disk of an exporter that the next
// config drops (or no longer sends a signal to): nothing would send it
// again. So before a swap the supervisor plans it (PlanSwap), and the next
// drain waits only for those queues, after stopping the receivers so that
// they stop filling (receivers.go).

// QueueRef names one sending queue on disk: an exporter and a signal (the
// name file_storage knows the queue's client by).
type QueueRef struct {
	Exporter string // component ID, e.g. otlp_grpc/gateway
	Signal   string // logs, metrics or traces
}

var plan struct {
	sync.Mutex
	// keep are the queues the next collector sends; nil: no swap planned.
	keep map[QueueRef]bool
	// ending: the pod is ending, a planned swap is off.
	ending bool
}

// PlanSwap tells the next drain that a collector with the queues keep
// follows this one.
func PlanSwap(keep map[QueueRef]bool) {
	plan.Lock()
	defer plan.Unlock()
	if plan.ending {
		return
	}
	if keep == nil {
		keep = map[QueueRef]bool{}
	}
	plan.keep = keep
}

// CancelSwap forgets a planned swap (the collector it was for did not stop
// through a drain).
func CancelSwap() {
	plan.Lock()
	plan.keep = nil
	plan.Unlock()
}

// Ending tells the drain that the pod ends: from now on every drain is the
// full one, a swap drain in progress included.
func Ending() {
	plan.Lock()
	plan.ending = true
	plan.keep = nil
	plan.Unlock()
}

func ending() bool {
	plan.Lock()
	defer plan.Unlock()
	return plan.ending
}

// takeSwap returns the planned swap's queues, once.
func takeSwap() (map[QueueRef]bool, bool) {
	plan.Lock()
	defer plan.Unlock()
	keep := plan.keep
	plan.keep = nil
	return keep, keep != nil
}

// swapDrain sends the queues on disk that the next collector drops. It
// reports whether the pod began to end meanwhile (then the full drain
// follows).
func (d *drainer) swapDrain(storages []*watchedStorage, keep map[QueueRef]bool) (podEnding bool) {
	start := time.Now()
	var dropped []*client
	for _, s := range storages {
		for _, c := range s.openClients() {
			if c.isQueue() && !keep[QueueRef{Exporter: c.id.String(), Signal: c.name}] {
				dropped = append(dropped, c)
			}
		}
	}
	if len(dropped) == 0 {
		d.log.Info("Drain before a config swap: the next collector keeps every queue on disk and resumes from file_log's offsets; nothing to wait for")
		return false
	}
	deadline := start.Add(d.timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := stopReceivers(ctx); err != nil {
		d.log.Warn("Drain before a config swap: a receiver failed to stop", zap.Error(err))
	}
	stopped := time.Now()
	defer progress.setDrain("")
	for {
		if ending() {
			return true
		}
		var pending []string
		now := time.Now()
		for _, c := range dropped {
			if c.closed.Load() {
				continue
			}
			if why := queueDone(ctx, c, stopped, now); why != "" {
				pending = append(pending, why)
			}
		}
		progress.setDrain(fmt.Sprint(pending))
		if len(pending) == 0 {
			d.log.Info("Drain before a config swap: the queues on disk of the exporters the next config drops are sent",
				zap.Int("queues", len(dropped)), zap.Duration("elapsed", time.Since(start).Round(time.Millisecond)))
			return false
		}
		if !now.Before(deadline) {
			d.log.Warn("Drain before a config swap: timeout passed with data in the queue of an exporter the next config drops; "+
				"it stays on disk and is sent if a later config has that exporter again (is its destination reachable?)",
				zap.Duration("timeout", d.timeout), zap.Strings("pending", pending))
			return false
		}
		time.Sleep(pollEvery)
	}
}
