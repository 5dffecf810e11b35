package webhook

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// configMapReadTimeout bounds one ConfigMap read on the admission path.
const configMapReadTimeout = 2 * time.Second

// configMapCache reads the exporters ConfigMaps that pods name, one GET per
// ConfigMap per TTL. An informer over every ConfigMap of the cluster (the
// manager's cached client) would hold all of them in memory and need list
// and watch on ConfigMaps everywhere, for the few that pods name.
type configMapCache struct {
	reader client.Reader
	ttl    time.Duration
	cache  *cache.LRUExpireCache // types.NamespacedName -> configMapRead
}

type configMapRead struct {
	cm  *corev1.ConfigMap
	err error
}

func newConfigMapCache(reader client.Reader, ttl time.Duration) *configMapCache {
	return &configMapCache{reader: reader, ttl: ttl, cache: cache.NewLRUExpireCache(1024)}
}

func (c *configMapCache) get(ctx context.Context, key types.NamespacedName) (*corev1.ConfigMap, error) {
	if v, ok := c.cache.Get(key); ok {
		r := v.(configMapRead)
		return r.cm, r.err
	}
	ctx, cancel := context.WithTimeout(ctx, configMapReadTimeout)
	defer cancel()
	cm := &corev1.ConfigMap{}
	err := c.reader.Get(ctx, key, cm)
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		err = configMapNotFound{key}
	case apierrors.IsForbidden(err):
		err = fmt.Errorf("the injector may not read ConfigMap %s/%s (it needs get on configmaps): %w", key.Namespace, key.Name, err)
	default:
		err = fmt.Errorf("reading ConfigMap %s/%s: %w", key.Namespace, key.Name, err)
	}
	if err != nil {
		cm = nil
	}
	// Failures are kept as long as answers: an unreachable API server must
	// not add its timeout to every pod.
	c.cache.Add(key, configMapRead{cm: cm, err: err}, c.ttl)
	return cm, err
}

// set records what the webhook itself just wrote: cm, or, when cm is nil
// (written by someone else meanwhile), nothing, so that the next get reads
// it.
func (c *configMapCache) set(key types.NamespacedName, cm *corev1.ConfigMap) {
	if cm == nil {
		c.cache.Remove(key)
		return
	}
	c.cache.Add(key, configMapRead{cm: cm}, c.ttl)
}

// configMapNotFound says that a ConfigMap does not exist (as opposed to
// could not be read).
type configMapNotFound struct{ key types.NamespacedName }

func (e configMapNotFound) Error() string {
	return fmt.Sprintf("ConfigMap %s not found in namespace %s", e.key.Name, e.key.Namespace)
}

// readExporters reads the ConfigMap key a pod's exporters annotation names,
// for injector.Config.ReferencedExporters.
func (h *Handler) readExporters(ctx context.Context, namespace string, ref annotations.ConfigMapRef) *injector.ReferencedExporters {
	rx := &injector.ReferencedExporters{Ref: ref}
	if h.configMaps == nil {
		rx.Err = fmt.Errorf("this injector reads no ConfigMaps")
		return rx
	}
	cm, err := h.configMaps.get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name})
	h.metrics.configMapRead(err)
	if err != nil {
		rx.Err = err
		return rx
	}
	data, ok := cm.Data[ref.Key]
	if !ok {
		rx.Err = fmt.Errorf("ConfigMap %s/%s has no key %s", namespace, ref.Name, ref.Key)
		return rx
	}
	rx.Data = data
	return rx
}
