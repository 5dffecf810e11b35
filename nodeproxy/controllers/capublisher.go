package controllers

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// CAKey is the ConfigMap key the collector's projected volume reads.
const CAKey = "ca.crt"

// caPublisher reconciles one namespace: the CA ConfigMap exists with the
// current CA when the namespace is opted in, and is gone when it is not.
type caPublisher struct {
	namespaces cache.Cache
	api        client.Client
	pub        *CAPublisher
	cfg        Config
	log        logr.Logger
}

func setupCAPublisher(mgr manager.Manager, c cache.Cache, api client.Client, cfg Config, log logr.Logger) error {
	pub := NewCAPublisher(api, cfg.CAFile, cfg.CAConfigMap)
	ca := pub.ca
	if _, err := ca.read(); err != nil {
		// Not fatal: the Secret may not be mounted yet. Reconciles retry.
		log.Error(err, "the proxy's CA cannot be read yet; ConfigMaps are published once it can")
	}
	r := &caPublisher{namespaces: c, api: api, pub: pub, cfg: cfg, log: log}
	changed := make(chan event.GenericEvent, 1)
	allNamespaces := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list corev1.NamespaceList
		if err := c.List(ctx, &list); err != nil {
			log.Error(err, "list opted-in namespaces")
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, ns := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: ns.Name}})
		}
		return reqs
	})
	err := builder.ControllerManagedBy(mgr).
		Named("fargate-otel-nodeproxy-ca").
		WatchesRawSource(source.Kind(c, &corev1.Namespace{}, &handler.TypedEnqueueRequestForObject[*corev1.Namespace]{})).
		WatchesRawSource(source.Channel(changed, allNamespaces)).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(cfg.SkipNameValidation)}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("nodeproxy CA publisher: %w", err)
	}
	// Re-publish everywhere when the CA file changes (a renewed or rotated
	// CA, or a Secret mounted after start).
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		t := time.NewTicker(cfg.CAPollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if ca.changed() {
					log.Info("the proxy's CA changed; publishing it", "file", cfg.CAFile)
					select {
					case changed <- event.GenericEvent{Object: &corev1.Namespace{}}:
					default: // one pending re-publish covers this change too
					}
				}
			}
		}
	}))
}

func (r *caPublisher) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	nsName := req.Name
	var ns corev1.Namespace
	err := r.namespaces.Get(ctx, client.ObjectKey{Name: nsName}, &ns)
	if apierrors.IsNotFound(err) {
		return reconcile.Result{}, r.remove(ctx, nsName)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if ns.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	_, action, err := r.pub.Publish(ctx, nsName, false)
	switch {
	case errors.Is(err, ErrNamespaceTerminating):
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, err
	case action == Created:
		r.log.Info("published the proxy's CA", "namespace", nsName)
	case action == Updated:
		r.log.Info("updated the proxy's CA", "namespace", nsName)
	case action == NotManaged:
		// Someone publishes their own CA here (a custom proxy certificate):
		// theirs wins.
		r.log.V(1).Info("ConfigMap is not managed by fargate-otel; leaving it alone", "namespace", nsName, "configMap", r.cfg.CAConfigMap)
	}
	return reconcile.Result{RequeueAfter: r.cfg.Resync}, nil
}

// remove deletes the ConfigMap of a namespace that opted out, if it is ours.
func (r *caPublisher) remove(ctx context.Context, nsName string) error {
	var cm corev1.ConfigMap
	err := r.api.Get(ctx, client.ObjectKey{Namespace: nsName, Name: r.cfg.CAConfigMap}, &cm)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get ConfigMap %s/%s: %w", nsName, r.cfg.CAConfigMap, err)
	}
	if !managed(&cm) {
		return nil
	}
	err = r.api.Delete(ctx, &cm, client.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ConfigMap %s/%s: %w", nsName, r.cfg.CAConfigMap, err)
	}
	r.log.Info("removed the proxy's CA from a namespace that is no longer opted in", "namespace", nsName)
	return nil
}

// caFile reads the CA bundle and notices when it changes.
type caFile struct {
	path string
	mu   sync.Mutex
	last []byte
}

func (f *caFile) read() ([]byte, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("read the proxy's CA: %w (mount key ca.crt of the proxy's TLS Secret)", err)
	}
	if err := validCABundle(b); err != nil {
		return nil, fmt.Errorf("the proxy's CA %s: %w", f.path, err)
	}
	f.mu.Lock()
	f.last = b
	f.mu.Unlock()
	return b, nil
}

// changed reports whether the file now holds a valid bundle different from
// the last one read.
func (f *caFile) changed() bool {
	b, err := os.ReadFile(f.path)
	if err != nil || validCABundle(b) != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if bytes.Equal(b, f.last) {
		return false
	}
	f.last = b
	return true
}

// validCABundle accepts PEM holding one or more certificates and nothing
// else: publishing a private key or garbage would be worse than waiting.
func validCABundle(b []byte) error {
	rest := bytes.TrimSpace(b)
	n := 0
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return errors.New("not PEM")
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q block; only certificates belong in a CA bundle", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return err
		}
		n++
		rest = bytes.TrimSpace(rest)
	}
	if n == 0 {
		return errors.New("empty")
	}
	return nil
}
