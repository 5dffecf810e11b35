package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// The webhook reads, for each pod, its namespace's labels and LimitRanges
// from informers of the manager's cache: opted-in namespaces only (the
// webhook is called for no other), stripped to their labels, and every
// LimitRange (few and small). RBAC: list and watch on namespaces and
// limitranges.

// cacheReadyGrace is how long the injector waits for those informers before
// it is ready anyway: a webhook that says why it could not fit a pod (in a
// warning) beats one that never serves because its RBAC lacks a rule.
const cacheReadyGrace = time.Minute

// webhookCacheOptions shape the manager's cache for the webhook's reads.
func webhookCacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Namespace{}: {
			Label:     labels.SelectorFromSet(labels.Set{annotations.Inject: annotations.Enabled}),
			Transform: namespaceLabelsOnly,
		},
		&corev1.LimitRange{}: {},
	}}
}

func namespaceLabelsOnly(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels}}, nil
}

// webhookInformers registers the informers (started with the manager) and
// returns whether both have synced.
func webhookInformers(ctx context.Context, mgr manager.Manager) (func() bool, error) {
	var synced []func() bool
	for _, obj := range []client.Object{&corev1.Namespace{}, &corev1.LimitRange{}} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
		synced = append(synced, inf.HasSynced)
	}
	return func() bool {
		for _, s := range synced {
			if !s() {
				return false
			}
		}
		return true
	}, nil
}

// cachesReady is a readiness check: the informers have synced, or grace has
// passed since start (then each pod's warnings say what is missing).
func cachesReady(synced func() bool, start time.Time, grace time.Duration) healthz.Checker {
	return func(*http.Request) error {
		if synced() || time.Since(start) > grace {
			return nil
		}
		return fmt.Errorf("the caches of namespaces and LimitRanges are not synced yet (the injector needs list and watch on namespaces and limitranges)")
	}
}
