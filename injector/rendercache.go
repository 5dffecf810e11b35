package injector

import (
	"encoding/json"
	"sync"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig"
)

// Rendering the collector YAML is most of the cost of a Mutate, and a
// cluster gives few distinct collector configs (one per combination of
// signals, exporters and memory limit). Render is deterministic, so its
// results are memoised; Mutate stays pure as seen from outside. The cache
// is bounded: when full it starts over.
const renderCacheSize = 256

var renderCache = struct {
	sync.Mutex
	m map[string]renderEntry
}{m: map[string]renderEntry{}}

type renderEntry struct {
	out []byte
	err error
}

func render(cc collectorconfig.Config) ([]byte, error) {
	key, err := json.Marshal(cc)
	if err != nil { // exporter settings JSON cannot hold: render uncached
		return collectorconfig.Render(cc)
	}
	renderCache.Lock()
	r, ok := renderCache.m[string(key)]
	renderCache.Unlock()
	if ok {
		return r.out, r.err
	}
	out, err := collectorconfig.Render(cc)
	renderCache.Lock()
	if len(renderCache.m) >= renderCacheSize {
		renderCache.m = map[string]renderEntry{}
	}
	renderCache.m[string(key)] = renderEntry{out, err}
	renderCache.Unlock()
	return out, err
}
