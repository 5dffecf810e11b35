package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fargate-otel/fargate-otel/injector"
)

// namespaceReadTimeout bounds the reads of one admission from the cache.
const namespaceReadTimeout = 2 * time.Second

// namespaceFacts reads what Mutate needs to know about the pod's namespace:
// its labels (the kubelet stats mode), its LimitRanges (from the informer
// cache), and whether the node proxy's CA ConfigMap is there (a GET by
// name, cached for ConfigMapTTL: the injector may not list ConfigMaps).
// What cannot be read stays unknown; the warnings say so when that changes
// what is injected.
func (h *Handler) namespaceFacts(ctx context.Context, namespace string) (injector.NamespaceFacts, []string) {
	var f injector.NamespaceFacts
	var warns []string
	log := h.log.WithValues("namespace", namespace)
	switch {
	case h.cache == nil:
	case h.cacheSynced != nil && !h.cacheSynced():
		h.metrics.namespaceRead(errNotSynced)
		warns = append(warns, "fargate-otel: the injector's cache of namespaces and LimitRanges is not filled yet (is it allowed to list and watch namespaces and limitranges?); "+
			"the injected containers were not fitted to the namespace's LimitRanges, and its kubelet stats label was not read")
	default:
		ctx, cancel := context.WithTimeout(ctx, namespaceReadTimeout)
		defer cancel()
		ns := &corev1.Namespace{}
		err := h.cache.Get(ctx, client.ObjectKey{Name: namespace}, ns)
		h.metrics.namespaceRead(err)
		if err == nil {
			f.Labels = ns.Labels
			if f.Labels == nil {
				f.Labels = map[string]string{}
			}
		} else {
			log.V(1).Info("namespace not read; the default kubelet stats mode applies", "error", err.Error())
		}
		var lrs corev1.LimitRangeList
		if err := h.cache.List(ctx, &lrs, client.InNamespace(namespace)); err != nil {
			log.Error(err, "LimitRanges not read")
			warns = append(warns, fmt.Sprintf("fargate-otel: the namespace's LimitRanges could not be read (%s); the injected containers were not fitted to them", shorten(err.Error(), 200)))
		} else {
			f.LimitRanges = lrs.Items
		}
	}
	if h.configMaps != nil && h.cfg.KubeletStats.Allows(injector.KubeletStatsProxy) {
		_, err := h.configMaps.get(ctx, types.NamespacedName{Namespace: namespace, Name: h.cfg.KubeletStats.NodeProxy.CAConfigMap})
		var nf configMapNotFound
		switch {
		case err == nil:
			f.NodeProxyCA = injector.Present
		case errors.As(err, &nf):
			f.NodeProxyCA = injector.Missing
		default:
			log.Info("the node proxy's CA ConfigMap could not be read; kubelet stats are configured as if it were there", "error", err.Error())
		}
	}
	return f, warns
}

// caPublishTimeout bounds publishing the node proxy's CA on the admission
// path (a GET and a create).
const caPublishTimeout = 2 * time.Second

// publishNodeProxyCA puts the missing CA ConfigMap of the node proxy into
// the namespace, so that a pod created right after its namespace was
// labelled gets kubelet stats like the ones after it. A dry run stores
// nothing (the webhook's sideEffects are NoneOnDryRun) but answers as the
// real request would: the API server checks the create as a dry run. When
// publishing fails, the CA stays Missing and the pod's warning says why.
func (h *Handler) publishNodeProxyCA(ctx context.Context, namespace string, dryRun bool, f *injector.NamespaceFacts) {
	ctx, cancel := context.WithTimeout(ctx, caPublishTimeout)
	defer cancel()
	cm, err := h.publishCA(ctx, namespace, dryRun)
	h.metrics.caPublished(err, dryRun)
	if err != nil {
		h.log.Info("the node proxy's CA could not be published; kubelet stats are off for the pod", "namespace", namespace, "dryRun", dryRun, "error", err.Error())
		f.NodeProxyCAError = shorten(err.Error(), 300)
		return
	}
	f.NodeProxyCA = injector.Present
	if !dryRun {
		// The NotFound read a moment ago must not outlive the publish.
		h.configMaps.set(types.NamespacedName{Namespace: namespace, Name: h.cfg.KubeletStats.NodeProxy.CAConfigMap}, cm)
		h.log.V(1).Info("published the node proxy's CA", "namespace", namespace)
	}
}

var errNotSynced = errors.New("cache not synced")
