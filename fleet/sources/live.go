// Package sources reads, from the Kubernetes API and nothing else, what the
// fleet's live settings are made of: the cluster's live settings ConfigMap
// (watched by name in the release namespace) and the exporters ConfigMaps
// that connected pods name in their own namespaces (read by name, polled:
// see Namespaces for why). Each change is announced on a channel; the
// server then recomputes what every agent should run.
package sources

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/fargate-otel/fargate-otel/fleet/desired"
)

// Live watches the live settings ConfigMap. It keeps the last good
// settings: a bad edit is reported (Err, an Event) and changes nothing.
type Live struct {
	client    kubernetes.Interface
	namespace string
	name      string
	events    *Events
	log       logr.Logger
	changed   func()

	mu      sync.RWMutex
	live    desired.Live
	err     string
	rv      string
	synced  bool
	present bool
}

// NewLive watches ConfigMap name of namespace; changed is called (from the
// watch goroutine) after each change of the settings or of their error.
func NewLive(client kubernetes.Interface, namespace, name string, events *Events, log logr.Logger, changed func()) *Live {
	if name == "" {
		name = desired.LiveConfigMap
	}
	return &Live{client: client, namespace: namespace, name: name, events: events, log: log, changed: changed}
}

// Get is the current good settings and the error of the latest version, if
// it was refused.
func (l *Live) Get() (desired.Live, string) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.live, l.err
}

// Synced says whether the ConfigMap was read once.
func (l *Live) Synced() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.synced
}

// Run watches until ctx ends. The watch is by name (a field selector), so
// that RBAC can grant it with resourceNames on this one ConfigMap.
func (l *Live) Run(ctx context.Context) {
	lw := cache.NewFilteredListWatchFromClient(l.client.CoreV1().RESTClient(), "configmaps", l.namespace, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", l.name).String()
	})
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.ConfigMap{},
		ResyncPeriod:  10 * time.Minute,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { l.set(o.(*corev1.ConfigMap)) },
			UpdateFunc: func(_, o any) { l.set(o.(*corev1.ConfigMap)) },
			DeleteFunc: func(any) { l.set(nil) },
		},
	})
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), ctrl.HasSynced) {
			l.mu.Lock()
			first := !l.synced
			l.synced = true
			l.mu.Unlock()
			if first {
				l.changed()
			}
		}
	}()
	ctrl.RunWithContext(ctx)
}

func (l *Live) set(cm *corev1.ConfigMap) {
	var live desired.Live
	var err error
	rv := ""
	if cm != nil {
		rv = cm.ResourceVersion
		live, err = desired.ParseLive(cm.Data)
	}
	l.mu.Lock()
	if rv != "" && rv == l.rv {
		l.mu.Unlock()
		return // a resync
	}
	l.rv, l.present = rv, cm != nil
	if err != nil {
		l.err = err.Error()
	} else {
		l.live, l.err = live, ""
	}
	l.mu.Unlock()
	if err != nil {
		l.log.Error(err, "the cluster's live settings are refused; the sidecars keep the last good ones", "configmap", l.namespace+"/"+l.name)
		l.events.Invalid(context.Background(), cm, "live settings", err.Error())
	} else if cm == nil {
		l.log.Info("no live settings ConfigMap: the sidecars run their own settings", "configmap", l.namespace+"/"+l.name)
	} else {
		l.log.Info("live settings read", "configmap", l.namespace+"/"+l.name, "resourceVersion", rv)
	}
	l.changed()
}

// String describes the source for logs.
func (l *Live) String() string { return fmt.Sprintf("ConfigMap %s/%s", l.namespace, l.name) }
