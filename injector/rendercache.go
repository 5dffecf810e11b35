package injector

import (
	"reflect"
	"slices"
	"sync"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig"
)

// Rendering the collector YAML is most of the cost of a Mutate, and a
// cluster gives few distinct collector configs (one per combination of
// signals, exporters and memory limit). Render is deterministic, so its
// results are memoised; Mutate stays pure as seen from outside. A config is
// found by its scalar fields, then compared whole with a private copy of
// each config rendered (cheaper than encoding it into a key). The cache is
// bounded: a few configs per key, and it starts over when full.
const (
	renderCacheKeys   = 256
	renderCachePerKey = 8
)

type renderKey struct {
	cluster         string
	memMiB, diskMiB int
	kubeletStats    collectorconfig.KubeletStats
	signals         int
}

type renderEntry struct {
	cc  collectorconfig.Config // a deep copy, never modified
	out string                 // a string: the env var's value as is, shared by every pod
	err error
}

var renderCache = struct {
	sync.RWMutex
	m map[renderKey][]renderEntry
}{m: map[renderKey][]renderEntry{}}

func render(cc collectorconfig.Config) (string, error) {
	key := renderKey{cc.ClusterName, cc.MemoryLimitMiB, cc.DiskQueueMiB, cc.KubeletStats, len(cc.Signals)}
	renderCache.RLock()
	entries := renderCache.m[key]
	renderCache.RUnlock()
	for _, e := range entries {
		if reflect.DeepEqual(e.cc, cc) {
			return e.out, e.err
		}
	}
	out, err := collectorconfig.Render(cc)
	kept, ok := copyConfig(cc)
	if !ok { // exporter settings of a type no YAML gives: render uncached
		return string(out), err
	}
	renderCache.Lock()
	defer renderCache.Unlock()
	if len(renderCache.m) >= renderCacheKeys {
		renderCache.m = map[renderKey][]renderEntry{}
	}
	entries = renderCache.m[key]
	if len(entries) >= renderCachePerKey {
		entries = entries[1:]
	}
	// A new slice: readers may hold the old one.
	renderCache.m[key] = append(slices.Clip(entries), renderEntry{kept, string(out), err})
	return string(out), err
}

// copyConfig is a deep copy of cc, which the caller may change after;
// ok is false when an exporter's settings hold a type it cannot copy.
func copyConfig(cc collectorconfig.Config) (collectorconfig.Config, bool) {
	c := cc
	c.Signals = slices.Clone(cc.Signals)
	c.LogInclude = slices.Clone(cc.LogInclude)
	c.LogExclude = slices.Clone(cc.LogExclude)
	c.Exporters = make([]collectorconfig.Exporter, len(cc.Exporters))
	for i, e := range cc.Exporters {
		settings, ok := copyValue(e.Config)
		if !ok {
			return c, false
		}
		c.Exporters[i] = collectorconfig.Exporter{ID: e.ID, Signals: slices.Clone(e.Signals)}
		if settings != nil {
			c.Exporters[i].Config = settings.(map[string]any)
		}
	}
	if cc.Exporters == nil {
		c.Exporters = nil
	}
	return c, true
}

// copyValue deep-copies what YAML and JSON decode to.
func copyValue(v any) (any, bool) {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v, true
		}
		m := make(map[string]any, len(v))
		for k, x := range v {
			c, ok := copyValue(x)
			if !ok {
				return nil, false
			}
			m[k] = c
		}
		return m, true
	case []any:
		if v == nil {
			return v, true
		}
		s := make([]any, len(v))
		for i, x := range v {
			c, ok := copyValue(x)
			if !ok {
				return nil, false
			}
			s[i] = c
		}
		return s, true
	case nil, string, bool, int, int64, uint64, float64:
		return v, true
	}
	return nil, false
}
