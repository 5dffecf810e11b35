package injector

import (
	"reflect"
	"slices"
	"sync"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Rendering the collector YAML (to check it and to hash it) and encoding
// the settings are most of the cost of a Mutate, and a cluster gives few
// distinct collector configs (one per combination of signals, exporters and
// memory limit). Both are deterministic, so their results are memoised; Mutate stays pure as seen from outside. A config is
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
	kubeletStats    sidecarconfig.KubeletStats
	signals         int
}

type renderEntry struct {
	cc  sidecarconfig.Config // a deep copy, never modified
	out rendered
	err error
}

// rendered is what the pod gets of a collector config.
type rendered struct {
	// settings is the env var's value (sidecarconfig.Encode), a string
	// shared by every pod.
	settings string
	// hash names the rendered YAML (sidecarconfig.Hash).
	hash string
}

var renderCache = struct {
	sync.RWMutex
	m map[renderKey][]renderEntry
}{m: map[renderKey][]renderEntry{}}

func render(cc sidecarconfig.Config) (rendered, error) {
	key := renderKey{cc.ClusterName, cc.MemoryLimitMiB, cc.DiskQueueMiB, cc.KubeletStats, len(cc.Signals)}
	renderCache.RLock()
	entries := renderCache.m[key]
	renderCache.RUnlock()
	for _, e := range entries {
		if reflect.DeepEqual(e.cc, cc) {
			return e.out, e.err
		}
	}
	out, err := renderUncached(cc)
	kept, ok := copyConfig(cc)
	if !ok { // exporter settings of a type no YAML gives: render uncached
		return out, err
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
	renderCache.m[key] = append(slices.Clip(entries), renderEntry{kept, out, err})
	return out, err
}

func renderUncached(cc sidecarconfig.Config) (rendered, error) {
	yaml, err := sidecarconfig.Render(cc)
	if err != nil {
		return rendered{}, err
	}
	settings, err := sidecarconfig.Encode(cc)
	if err != nil {
		return rendered{}, err
	}
	return rendered{settings: string(settings), hash: sidecarconfig.Hash(yaml)}, nil
}

// copyConfig is a deep copy of cc, which the caller may change after;
// ok is false when an exporter's settings hold a type it cannot copy.
func copyConfig(cc sidecarconfig.Config) (sidecarconfig.Config, bool) {
	c := cc
	c.Signals = slices.Clone(cc.Signals)
	c.LogInclude = slices.Clone(cc.LogInclude)
	c.LogExclude = slices.Clone(cc.LogExclude)
	c.Exporters = make([]sidecarconfig.Exporter, len(cc.Exporters))
	for i, e := range cc.Exporters {
		settings, ok := copyValue(e.Config)
		if !ok {
			return c, false
		}
		c.Exporters[i] = sidecarconfig.Exporter{ID: e.ID, Signals: slices.Clone(e.Signals)}
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
