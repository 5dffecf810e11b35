// Package podindex keeps the node proxy's view of pods: for each pod only its
// identity, node, service account and whether it has finished, fed by a watch
// so that a deleted pod stops being able to scrape at once, and small enough
// that a cluster of tens of thousands of pods costs a few MiB.
package podindex

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

const byNode = "node"

// containersKey is an annotation that exists only in the index's stripped
// copies: the pod's regular and init container names, comma-separated
// (container names are DNS labels, without commas). One short string costs a
// fraction of keeping the container specs (about 400 bytes each).
const containersKey = "nodeproxy.fargate-otel.io/containers"

// Index answers pod look-ups from a watch, with a GET for pods the watch has
// not delivered yet.
type Index struct {
	client  kubernetes.Interface // nil for a static index
	store   cache.Indexer
	synced  func() bool
	factory informers.SharedInformerFactory
}

// New returns an Index over all pods the client can watch. Call Start.
func New(client kubernetes.Interface) (*Index, error) {
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Pods().Informer()
	if err := inf.SetTransform(strip); err != nil {
		return nil, fmt.Errorf("pod index: %w", err)
	}
	if err := inf.AddIndexers(cache.Indexers{byNode: nodeIndex}); err != nil {
		return nil, fmt.Errorf("pod index: %w", err)
	}
	return &Index{client: client, store: inf.GetIndexer(), synced: inf.HasSynced, factory: factory}, nil
}

// NewStatic returns an Index that holds pods and never asks the API server,
// for benchmarks and tests: it keeps them exactly as the watch would.
func NewStatic(pods []corev1.Pod) (*Index, error) {
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{byNode: nodeIndex})
	for i := range pods {
		p, _ := strip(&pods[i])
		if err := store.Add(p); err != nil {
			return nil, fmt.Errorf("pod index: %w", err)
		}
	}
	return &Index{store: store, synced: func() bool { return true }}, nil
}

// Start runs the watch until ctx ends.
func (i *Index) Start(ctx context.Context) {
	if i.factory != nil {
		i.factory.Start(ctx.Done())
	}
}

// HasSynced is true once the first full list has arrived.
func (i *Index) HasSynced() bool { return i.synced() }

// WaitForSync blocks until the first list arrived or ctx ends.
func (i *Index) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), i.synced)
}

// Get returns the pod, or nil when it does not exist.
func (i *Index) Get(ctx context.Context, namespace, name string) (*callerauth.Pod, error) {
	obj, ok, err := i.store.GetByKey(namespace + "/" + name)
	if err == nil && ok {
		return toPod(obj.(*corev1.Pod)), nil
	}
	if i.client == nil {
		return nil, nil
	}
	// Not watched yet (a pod younger than the watch's latency, or the index
	// is still syncing): ask the API server.
	p, err := i.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	// Stripped as the watch strips it: the pod's own annotations never
	// reach toPod.
	stripped, _ := strip(p)
	return toPod(stripped.(*corev1.Pod)), nil
}

// OthersOnNode reports whether pods other than uid are bound to node.
func (i *Index) OthersOnNode(node, uid string) bool {
	objs, err := i.store.ByIndex(byNode, node)
	if err != nil {
		return true
	}
	for _, o := range objs {
		if string(o.(*corev1.Pod).UID) != uid {
			return true
		}
	}
	return false
}

// Len is the number of pods held.
func (i *Index) Len() int { return len(i.store.ListKeys()) }

func nodeIndex(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{p.Spec.NodeName}, nil
}

func toPod(p *corev1.Pod) *callerauth.Pod {
	return &callerauth.Pod{
		Namespace:      p.Namespace,
		Name:           p.Name,
		UID:            string(p.UID),
		NodeName:       p.Spec.NodeName,
		ServiceAccount: serviceAccount(p),
		Finished:       p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		Containers:     containerNames(p),
	}
}

// containerNames reads the names a stripped pod carries.
func containerNames(p *corev1.Pod) []string {
	if v := p.Annotations[containersKey]; v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

// specContainerNames are a whole pod's regular, then init container names.
// Ephemeral (debug) containers are not among them: their logs are not the
// pod's own output.
func specContainerNames(p *corev1.Pod) string {
	names := make([]string, 0, len(p.Spec.Containers)+len(p.Spec.InitContainers))
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	return strings.Join(names, ",")
}

func serviceAccount(p *corev1.Pod) string {
	if p.Spec.ServiceAccountName == "" {
		return "default"
	}
	return p.Spec.ServiceAccountName
}

// strip keeps only what the proxy checks; everything else in a pod (specs,
// env, statuses, its own labels and annotations) would be memory spent on
// nothing. The container names go into the one annotation containersKey.
func strip(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // tombstones pass through
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            p.Name,
			Namespace:       p.Namespace,
			UID:             p.UID,
			ResourceVersion: p.ResourceVersion,
			Annotations:     map[string]string{containersKey: specContainerNames(p)},
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName, ServiceAccountName: p.Spec.ServiceAccountName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}, nil
}
