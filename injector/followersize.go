package injector

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/fargate-otel/fargate-otel/injector/fargatesize"
)

// followerMinRequests are the floors of the follower's requests in fit
// mode: no CPU (compressible, as the collector's floor) and 16Mi, twice
// its measured peak RSS; its limits stay, so it is never starved of what
// it uses.
var followerMinRequests = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("0"),
	corev1.ResourceMemory: resource.MustParse("16Mi"),
}

// fitFollower settles the follower's requests before sizeCollector fits
// the collector into what is left. In fit mode they are lowered to what
// the Fargate size the pod already pays for leaves once the collector's
// floors are kept for it (so that the collector, not the follower, is what
// may cross a step), never below followerMinRequests; with pod-level
// resources they are cut to what the pod's requests leave and the limits
// to the pod's, or the API server would reject the pod.
func (p *plan) fitFollower(orig *corev1.PodSpec, pod *corev1.Pod) {
	var f *corev1.Container
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == FollowerContainerName {
			f = &pod.Spec.InitContainers[i]
		}
	}
	if f == nil {
		return
	}
	before, _, okBefore := fargatesize.ForPod(orig)
	fit := p.cfg.FargateSizing == "fit"
	if p.opts.FargateSizing != "" {
		fit = p.opts.FargateSizing == "fit"
	}

	// The pod without the follower's and the collector's requests.
	spec := pod.Spec
	spec.InitContainers = make([]corev1.Container, len(pod.Spec.InitContainers))
	for i, c := range pod.Spec.InitContainers {
		if c.Name == FollowerContainerName || c.Name == CollectorContainerName {
			c.Resources = corev1.ResourceRequirements{}
		}
		spec.InitContainers[i] = c
	}
	spec.Containers = make([]corev1.Container, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		if c.Name == CollectorContainerName {
			c.Resources = corev1.ResourceRequirements{}
		}
		spec.Containers[i] = c
	}
	base := fargatesize.AggregateRequests(&spec)
	head := fargatesize.Headroom(before, fargatesize.PodRequests(&spec))

	res := f.Resources.DeepCopy()
	for _, r := range []struct {
		name       corev1.ResourceName
		head, base int64
	}{
		{corev1.ResourceCPU, head.MilliCPU, base.MilliCPU},
		{corev1.ResourceMemory, head.MemoryBytes, base.MemoryBytes},
	} {
		want, ok := res.Requests[r.name]
		if !ok {
			continue
		}
		x := amount(r.name, want)
		if fit && okBefore {
			kept := amount(r.name, p.cfg.Collector.MinRequests[r.name])
			x = min(x, max(amount(r.name, followerMinRequests[r.name]), r.head-kept))
		}
		if pl := pod.Spec.Resources; pl != nil {
			if q, ok := pl.Requests[r.name]; ok {
				x = min(x, max(amount(r.name, q)-r.base, 0))
			}
		}
		// An explicit zero: without a request the API server would copy
		// the limit into it, and Fargate would size the pod by it.
		res.Requests[r.name] = quantity(r.name, x)
	}
	if pl := pod.Spec.Resources; pl != nil {
		for name, podLimit := range pl.Limits {
			if lim, ok := res.Limits[name]; ok && lim.Cmp(podLimit) > 0 {
				res.Limits[name] = podLimit.DeepCopy()
			}
		}
	}
	for name, req := range res.Requests {
		if lim, ok := res.Limits[name]; ok && req.Cmp(lim) > 0 {
			res.Requests[name] = lim.DeepCopy()
		}
	}
	f.Resources = *res
}
