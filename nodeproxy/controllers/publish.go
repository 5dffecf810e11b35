package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// CAPublisher writes the proxy's CA into the CA ConfigMap of a namespace.
// The CA publisher's reconcile uses it, and so does the webhook when a pod
// in mode proxy arrives before that reconcile did (a namespace labelled in
// the same apply as its workloads): both write the same ConfigMap the same
// way.
type CAPublisher struct {
	api       client.Client
	ca        *caFile
	configMap string
}

// NewCAPublisher publishes the CA bundle read from caPath (PEM
// certificates, re-read at every call) as ConfigMap configMap through api,
// which must read ConfigMaps from the API server (not from a cache: the
// injector may not list them).
func NewCAPublisher(api client.Client, caPath, configMap string) *CAPublisher {
	return &CAPublisher{api: api, ca: &caFile{path: caPath}, configMap: configMap}
}

// NewCAPublisherFor is the publisher of the injector's manager with cfg's
// CA file and ConfigMap (defaults as in Setup), with a client of its own
// that reads straight from the API server.
func NewCAPublisherFor(mgr manager.Manager, cfg Config) (*CAPublisher, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	api, err := directClient(mgr)
	if err != nil {
		return nil, err
	}
	return NewCAPublisher(api, cfg.CAFile, cfg.CAConfigMap), nil
}

// directClient reads and writes through the API server, with the
// manager's configuration and a scheme of the built-in types only.
func directClient(mgr manager.Manager) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient()})
	if err != nil {
		return nil, fmt.Errorf("nodeproxy controllers: client: %w", err)
	}
	return c, nil
}

// Action says what Publish did.
type Action string

const (
	// Created: the ConfigMap did not exist; it does now.
	Created Action = "created"
	// Updated: our ConfigMap held another CA; it holds the current one.
	Updated Action = "updated"
	// Unchanged: our ConfigMap already held the current CA, or someone
	// created it between our read and our create.
	Unchanged Action = "unchanged"
	// NotManaged: the ConfigMap is someone else's (a custom proxy
	// certificate): theirs wins, and it is left alone.
	NotManaged Action = "not-managed"
)

// ErrNamespaceTerminating: the namespace is being deleted, so nothing can
// be created in it (and no pod either).
var ErrNamespaceTerminating = errors.New("the namespace is being deleted")

// Publish makes the CA ConfigMap of namespace hold the current CA: it
// creates it, updates ours when it holds another CA, and leaves a user's
// own alone. A ConfigMap created by someone else between the read and the
// create counts as published (AlreadyExists is success). It returns the
// ConfigMap as it now is, or nil when it is not known (created by someone
// else meanwhile).
//
// With dryRun, the create or update goes to the API server as a dry run: it
// is authorized, validated and admitted like the real one, and nothing is
// stored.
func (p *CAPublisher) Publish(ctx context.Context, namespace string, dryRun bool) (*corev1.ConfigMap, Action, error) {
	caPEM, err := p.ca.read()
	if err != nil {
		return nil, "", err
	}
	var opts []client.CreateOption
	var updateOpts []client.UpdateOption
	if dryRun {
		opts = append(opts, client.DryRunAll)
		updateOpts = append(updateOpts, client.DryRunAll)
	}
	cm := &corev1.ConfigMap{}
	err = p.api.Get(ctx, client.ObjectKey{Namespace: namespace, Name: p.configMap}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: p.configMap, Labels: managedLabels(),
				Annotations: map[string]string{"fargate-otel.io/description": "CA of fargate-otel-nodeproxy, read by the otel-collector sidecars; kept current by the fargate-otel injector"}},
			Data: map[string]string{CAKey: string(caPEM)},
		}
		err := p.api.Create(ctx, cm, opts...)
		switch {
		case err == nil:
			return cm, Created, nil
		case apierrors.IsAlreadyExists(err):
			return nil, Unchanged, nil
		case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			return nil, "", fmt.Errorf("create ConfigMap %s/%s: %w", namespace, p.configMap, ErrNamespaceTerminating)
		case apierrors.IsForbidden(err):
			return nil, "", fmt.Errorf("create ConfigMap %s/%s: %w (the injector needs create on configmaps: ClusterRole fargate-otel-injector-nodeproxy of the chart)", namespace, p.configMap, err)
		default:
			return nil, "", fmt.Errorf("create ConfigMap %s/%s: %w", namespace, p.configMap, err)
		}
	case err != nil:
		return nil, "", fmt.Errorf("get ConfigMap %s/%s: %w", namespace, p.configMap, err)
	case !managed(cm):
		return cm, NotManaged, nil
	case cm.Data[CAKey] == string(caPEM):
		return cm, Unchanged, nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[CAKey] = string(caPEM)
	if err := p.api.Update(ctx, cm, updateOpts...); err != nil {
		return nil, "", fmt.Errorf("update ConfigMap %s/%s: %w", namespace, p.configMap, err)
	}
	return cm, Updated, nil
}
