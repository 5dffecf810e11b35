package sources

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fargate-otel/fargate-otel/fleet/desired"
)

// Key names an exporters ConfigMap: always in the namespace of the pods
// that use it (the namespace of their tokens).
type Key struct{ Namespace, Name string }

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// MaxConfigMapBytes bounds what is kept of one exporters ConfigMap.
const MaxConfigMapBytes = 256 << 10

// Namespaces reads the exporters ConfigMaps that connected pods name, by
// name, with `get` only.
//
// Why polling and not a watch: RBAC cannot grant "the ConfigMaps that some
// pod names"; a watch (or list) would need the right to read every
// ConfigMap of the cluster in bulk (kube-system's included), while `get`
// by name is what the injector already holds to read the same ConfigMaps at
// admission. Polling costs one GET per ConfigMap in use (not per pod) each
// interval, and the interval grows with their number so that a replica
// never sends more than MaxQPS of them.
type Namespaces struct {
	client   kubernetes.Interface
	interval time.Duration
	maxQPS   float64
	events   *Events
	log      logr.Logger
	changed  func(Key)
	now      func() time.Time

	mu      sync.Mutex
	entries map[Key]*nsEntry
	wake    chan struct{}
}

type nsEntry struct {
	refs  map[string]int // by key of the ConfigMap
	state desired.Namespace
	rv    string
	next  time.Time
}

// NamespaceOptions tune Namespaces.
type NamespaceOptions struct {
	// Interval is the shortest time between two reads of one ConfigMap
	// (default 2s).
	Interval time.Duration
	// MaxQPS bounds the reads per second of this replica (default 5).
	MaxQPS float64
}

// NewNamespaces reads ConfigMaps with client; changed is called after the
// content (or error) of one changed.
func NewNamespaces(client kubernetes.Interface, o NamespaceOptions, events *Events, log logr.Logger, changed func(Key)) *Namespaces {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.MaxQPS <= 0 {
		o.MaxQPS = 5
	}
	return &Namespaces{client: client, interval: o.Interval, maxQPS: o.MaxQPS, events: events, log: log, changed: changed,
		now: time.Now, entries: map[Key]*nsEntry{}, wake: make(chan struct{}, 1)}
}

// Want says that a connected pod uses key dataKey of ConfigMap k; it is
// read at once the first time.
func (n *Namespaces) Want(k Key, dataKey string) {
	n.mu.Lock()
	e := n.entries[k]
	if e == nil {
		e = &nsEntry{refs: map[string]int{}}
		n.entries[k] = e
	}
	e.refs[dataKey]++
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Release undoes one Want.
func (n *Namespaces) Release(k Key, dataKey string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.entries[k]
	if e == nil {
		return
	}
	if e.refs[dataKey]--; e.refs[dataKey] <= 0 {
		delete(e.refs, dataKey)
	}
	if len(e.refs) == 0 {
		delete(n.entries, k)
	}
}

// Get is what was read of k.
func (n *Namespaces) Get(k Key) desired.Namespace {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.entries[k]; e != nil {
		return e.state
	}
	return desired.Namespace{}
}

// InUse is the number of ConfigMaps polled.
func (n *Namespaces) InUse() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.entries)
}

// Run polls until ctx ends.
func (n *Namespaces) Run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		for _, k := range n.due() {
			n.read(ctx, k)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
	}
}

// due is the ConfigMaps whose time has come, oldest first, and schedules
// their next read.
func (n *Namespaces) due() []Key {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	every := max(n.interval, time.Duration(float64(len(n.entries))/n.maxQPS*float64(time.Second)))
	var out []Key
	for k, e := range n.entries {
		if !e.next.After(now) {
			out = append(out, k)
			e.next = now.Add(every)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func (n *Namespaces) read(ctx context.Context, k Key) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cm, err := n.client.CoreV1().ConfigMaps(k.Namespace).Get(rctx, k.Name, metav1.GetOptions{})
	st := desired.Namespace{Known: true}
	rv := ""
	switch {
	case apierrors.IsNotFound(err):
		st.Err = fmt.Sprintf("ConfigMap %s not found", k)
	case apierrors.IsForbidden(err):
		st.Err = fmt.Sprintf("the fleet server may not read ConfigMap %s: %v (the chart grants get on configmaps; check the ClusterRole fargate-otel-fleet)", k, err)
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		// Transient: keep what was read; try again next time.
		n.log.Info("cannot read an exporters ConfigMap; will retry", "configmap", k.String(), "error", err.Error())
		return
	default:
		rv = cm.ResourceVersion
		size := 0
		for key, v := range cm.Data {
			size += len(key) + len(v)
		}
		if size > MaxConfigMapBytes {
			st.Err = fmt.Sprintf("ConfigMap %s holds %d bytes, more than the %d the fleet reads", k, size, MaxConfigMapBytes)
		} else {
			st.Data = cm.Data
		}
	}
	n.mu.Lock()
	e := n.entries[k]
	if e == nil {
		n.mu.Unlock()
		return // released meanwhile
	}
	same := e.state.Known && e.rv == rv && e.state.Err == st.Err
	e.state, e.rv = st, rv
	keys := make([]string, 0, len(e.refs))
	for key := range e.refs {
		keys = append(keys, key)
	}
	n.mu.Unlock()
	if same {
		return
	}
	if cm != nil && st.Data != nil {
		for _, key := range keys {
			v, ok := st.Data[key]
			if !ok {
				n.events.Invalid(ctx, cm, "exporters", fmt.Sprintf("no key %q, which injected pods name in their fargate-otel.io/exporters annotation", key))
				continue
			}
			if _, err := desired.ParseExporters(v); err != nil {
				n.events.Invalid(ctx, cm, "exporters", fmt.Sprintf("key %s: %v; the fleet does not send it, the sidecars keep their current exporters", key, err))
			}
		}
	}
	n.log.Info("exporters ConfigMap read", "configmap", k.String(), "resourceVersion", rv, "error", st.Err)
	n.changed(k)
}
