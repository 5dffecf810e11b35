package sidecarconfig

import (
	"fmt"
	"maps"
)

// Sending queues on disk.
//
// An exporter whose sending_queue has `storage: file_storage` keeps its
// queue on the logs volume, which the kubelet evicts the pod for filling.
// The collector's default queue is counted in requests (1000), not bytes:
// during a gateway outage it can grow to gigabytes. So every such queue is
// given the bytes sizer and a queue_size that is its share of
// Config.DiskQueueMiB; each exporter has one queue per signal it sends.
// A full queue refuses data, which file_log retries: the lines wait in the
// files, which the wrapper's own budget bounds.

const (
	// DefaultDiskQueueMiB is the disk all queues may take together with the
	// default logs volume (256Mi): an eighth of it. The injector derives it
	// from the pod's volume.
	DefaultDiskQueueMiB = 32
	// MinDiskQueueMiB is the smallest queue: it must hold the largest
	// request file_log sends (100 lines, and at most two recombined lines of
	// 1 MiB per file), or that request would be refused forever.
	MinDiskQueueMiB = 8
)

// storageQueue reports whether an exporter config keeps its queue in
// file_storage.
func storageQueue(cfg map[string]any) (map[string]any, bool) {
	q, ok := cfg["sending_queue"].(map[string]any)
	if !ok || q["storage"] != StorageExtensionID {
		return nil, false
	}
	if enabled, set := q["enabled"].(bool); set && !enabled {
		return nil, false
	}
	return q, true
}

// diskQueues counts the queues that go to disk: one per exporter and signal.
func (c Config) diskQueues() int {
	n := 0
	for _, sig := range c.Signals {
		for _, e := range c.Exporters {
			if _, ok := storageQueue(e.Config); ok && e.sends(sig) {
				n++
			}
		}
	}
	return n
}

// MinDiskQueuesMiB is the least DiskQueueMiB that c's disk queues need
// (MinDiskQueueMiB each); 0 when no queue is on disk.
func (c Config) MinDiskQueuesMiB() int { return c.diskQueues() * MinDiskQueueMiB }

// diskQueueBytes is each disk queue's share of DiskQueueMiB.
func (c Config) diskQueueBytes() int64 {
	n := c.diskQueues()
	if n == 0 {
		return 0
	}
	return int64(c.DiskQueueMiB) << 20 / int64(n)
}

// validateDiskQueues says what is wrong with the disk queues: too small a
// share, or a sizer or size that would not keep to it.
func (c Config) validateDiskQueues() []error {
	n := c.diskQueues()
	if n == 0 {
		return nil
	}
	share := c.diskQueueBytes()
	var errs []error
	if share < MinDiskQueueMiB<<20 {
		errs = append(errs, fmt.Errorf("%d sending queues on disk (sending_queue.storage: %s) share %d MiB, below %d MiB each: give the logs volume more room, or keep fewer queues on disk",
			n, StorageExtensionID, c.DiskQueueMiB, MinDiskQueueMiB))
	}
	for _, e := range c.Exporters {
		q, ok := storageQueue(e.Config)
		if !ok {
			continue
		}
		if sizer, set := q["sizer"]; set && sizer != "bytes" {
			errs = append(errs, fmt.Errorf("exporter %q keeps its sending queue on disk with sizer %v: remove sizer and queue_size (the queue then takes its share of the logs volume, %d MiB) or use sizer: bytes",
				e.ID, sizer, share>>20))
			continue
		}
		if size, set := q["queue_size"]; set {
			v, ok := toInt64(size)
			switch {
			case !ok || v <= 0:
				errs = append(errs, fmt.Errorf("exporter %q: sending_queue.queue_size %v is not a positive number of bytes", e.ID, size))
			case v > share:
				errs = append(errs, fmt.Errorf("exporter %q: its sending queue on disk may take %d bytes, more than its share of the logs volume (%d bytes): lower queue_size or remove it",
					e.ID, v, share))
			}
		}
	}
	return errs
}

// boundDiskQueue returns the exporter's config with its disk queue bounded
// (bytes sizer, queue_size its share), without changing the caller's maps.
func (c Config) boundDiskQueue(cfg map[string]any) map[string]any {
	q, ok := storageQueue(cfg)
	if !ok {
		return cfg
	}
	nq := maps.Clone(q)
	nq["sizer"] = "bytes"
	if _, set := nq["queue_size"]; !set {
		nq["queue_size"] = c.diskQueueBytes()
	}
	out := maps.Clone(cfg)
	out["sending_queue"] = nq
	return out
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		return int64(x), x <= 1<<62
	case float64:
		return int64(x), x == float64(int64(x))
	}
	return 0, false
}
