// Package controllers keeps the cluster side of kubelet stats in shape. They
// run inside the injector's controller-runtime manager (the proxy itself
// holds no write access to anything):
//
//   - mode proxy: the CA publisher copies the proxy's serving CA into the
//     ConfigMap fargate-otel-nodeproxy-ca of every opted-in namespace, where
//     the collector's projected volume reads it, and keeps it current;
//   - mode direct: the direct binding controller keeps one
//     ClusterRoleBinding, owned by the injector, that grants the chart's
//     ClusterRole to the service accounts of pods injected in mode direct in
//     opted-in namespaces, and nothing more;
//   - when direct is not allowed, that binding is removed if a former
//     direct mode left it.
//
// Several modes can be in use at once (namespaces choose theirs with a
// label): each controller runs when its mode is allowed.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// Modes, as in the injector's kubeletStats.mode.
const (
	ModeProxy  = "proxy"
	ModeDirect = "direct"
	ModeOff    = "off"
)

// DefaultCAFile is where the chart mounts the proxy's CA into the injector
// (key ca.crt of the Secret fargate-otel-nodeproxy-tls).
const DefaultCAFile = "/etc/fargate-otel/nodeproxy-ca/ca.crt"

// Config of the controllers. Zero values take the defaults.
type Config struct {
	// Mode is proxy, direct or off: the injector's default mode.
	Mode string
	// Modes are all the modes namespaces may use (the injector's
	// kubeletStats.allowedModes and its default mode). The CA publisher runs
	// when proxy is one of them, the direct binding controller when direct
	// is; without direct, a binding an earlier direct mode left is removed.
	// Empty means Mode alone.
	Modes []string
	// CAFile is the proxy's CA bundle (PEM): key ca.crt of the proxy's TLS
	// Secret mounted into the injector (default DefaultCAFile).
	CAFile string
	// CAConfigMap is the ConfigMap published in opted-in namespaces
	// (default fargate-otel-nodeproxy-ca).
	CAConfigMap string
	// DirectClusterRole and DirectBinding name the role mode direct grants
	// and the binding the injector owns (defaults in package rbac).
	DirectClusterRole string
	DirectBinding     string
	// NamespaceLabel and NamespaceValue select opted-in namespaces
	// (default fargate-otel.io/inject=enabled).
	NamespaceLabel, NamespaceValue string
	// Resync re-checks every published ConfigMap this often, repairing
	// edits and deletions (default 10m): the injector deliberately cannot
	// watch ConfigMaps.
	Resync time.Duration
	// CAPollInterval is how often CAFile is re-read (default 10s).
	CAPollInterval time.Duration
	// SkipNameValidation lets tests run several managers in one process.
	SkipNameValidation bool
}

func (c *Config) defaults() error {
	if c.Mode == "" {
		c.Mode = ModeProxy
	}
	if c.CAConfigMap == "" {
		c.CAConfigMap = rbac.CAConfigMap
	}
	if c.DirectClusterRole == "" {
		c.DirectClusterRole = rbac.DirectClusterRole
	}
	if c.DirectBinding == "" {
		c.DirectBinding = rbac.DirectBinding
	}
	if c.NamespaceLabel == "" {
		c.NamespaceLabel, c.NamespaceValue = "fargate-otel.io/inject", "enabled"
	}
	if c.Resync <= 0 {
		c.Resync = 10 * time.Minute
	}
	if c.CAPollInterval <= 0 {
		c.CAPollInterval = 10 * time.Second
	}
	if c.CAFile == "" {
		c.CAFile = DefaultCAFile
	}
	if !slices.Contains(c.Modes, c.Mode) {
		c.Modes = append([]string{c.Mode}, c.Modes...)
	}
	for _, m := range c.Modes {
		switch m {
		case ModeProxy, ModeDirect, ModeOff:
		default:
			return fmt.Errorf("nodeproxy controllers: mode %q is not proxy, direct or off", m)
		}
	}
	return nil
}

// Setup adds the controllers of cfg.Modes to mgr. They use a cache and a
// client of their own, so that they depend on nothing the manager's owner
// chose, and read ConfigMaps and ClusterRoleBindings straight from the API
// server (by name: the injector may not list them).
func Setup(mgr manager.Manager, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	direct, err := directClient(mgr)
	if err != nil {
		return err
	}
	scheme := direct.Scheme()
	sel := labels.SelectorFromSet(labels.Set{cfg.NamespaceLabel: cfg.NamespaceValue})
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:     scheme,
		Mapper:     mgr.GetRESTMapper(),
		HTTPClient: mgr.GetHTTPClient(),
		ByObject: map[client.Object]cache.ByObject{
			// A namespace that loses the label leaves the cache: the
			// controllers see that as a deletion and clean up.
			&corev1.Namespace{}: {Label: sel, Transform: stripNamespace},
			&corev1.Pod{}:       {Transform: stripPod},
		},
	})
	if err != nil {
		return fmt.Errorf("nodeproxy controllers: cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return err
	}
	log := mgr.GetLogger().WithName("nodeproxy")

	if slices.Contains(cfg.Modes, ModeProxy) {
		if err := setupCAPublisher(mgr, c, direct, cfg, log.WithName("ca-publisher")); err != nil {
			return err
		}
	}
	if slices.Contains(cfg.Modes, ModeDirect) {
		return setupDirectBinding(mgr, c, direct, cfg, log.WithName("direct-binding"))
	}
	// Direct not allowed: a binding left by an earlier direct mode must go.
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		removeDirectBinding(ctx, direct, cfg, log.WithName("direct-binding"))
		return nil
	}))
}

func managed(m metav1.Object) bool { return m.GetLabels()[rbac.ManagedByLabel] == rbac.ManagedByValue }

func managedLabels() map[string]string {
	return map[string]string{rbac.ManagedByLabel: rbac.ManagedByValue, "app.kubernetes.io/name": "fargate-otel"}
}

// stripNamespace and stripPod keep what the controllers read; the rest of
// a pod (env values included) is none of the injector's business.
func stripNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels}}, nil
}

func stripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Spec:       corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName},
		Status:     corev1.PodStatus{Phase: p.Status.Phase},
	}
	if s, ok := p.Annotations[StatusAnnotation]; ok {
		out.Annotations = map[string]string{StatusAnnotation: s}
	}
	return out, nil
}
