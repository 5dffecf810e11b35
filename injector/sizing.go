package injector

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/fargatesize"
)

// sizeCollector settles the collector's resources in the mutated pod and
// records the Fargate size before and after injection. In fit mode the
// requests are lowered, not below the floors, to what the size the pod
// already pays for leaves free. Whatever the mode, pod-level resources
// (spec.resources) are respected, or the API server would reject the pod:
// the containers' requests must sum to at most the pod's, and no container
// limit may exceed the pod's.
func (p *plan) sizeCollector(orig *corev1.PodSpec, pod *corev1.Pod, collector *corev1.Container) sizing {
	before, _, okBefore := fargatesize.ForPod(orig)

	res := p.cfg.Collector.Resources.DeepCopy()
	fit := p.cfg.FargateSizing == "fit"
	if p.opts.FargateSizing != "" {
		fit = p.opts.FargateSizing == "fit"
	}
	if p.opts.CollectorResources != nil {
		res = p.opts.CollectorResources.DeepCopy()
		fit = false
	}
	if res.Requests == nil {
		res.Requests = corev1.ResourceList{}
	}

	// Requests of the pod with a collector that requests nothing: what the
	// collector's own requests are added to.
	collector.Resources = corev1.ResourceRequirements{}
	base := fargatesize.AggregateRequests(&pod.Spec)
	baseEffective := fargatesize.PodRequests(&pod.Spec)
	head := fargatesize.Headroom(before, baseEffective)
	podLevel := pod.Spec.Resources

	for _, r := range []struct {
		name       corev1.ResourceName
		head, base int64 // milli-CPU or bytes
		format     resource.Format
	}{
		{corev1.ResourceCPU, head.MilliCPU, base.MilliCPU, resource.DecimalSI},
		{corev1.ResourceMemory, head.MemoryBytes, base.MemoryBytes, resource.BinarySI},
	} {
		want, hasWant := res.Requests[r.name]
		if !hasWant {
			continue
		}
		floor := p.cfg.Collector.MinRequests[r.name]
		x := amount(r.name, want)
		if fit && okBefore {
			x = min(x, max(amount(r.name, floor), r.head))
		}
		if podLevel != nil {
			if q, ok := podLevel.Requests[r.name]; ok {
				room := max(amount(r.name, q)-r.base, 0)
				if x > room {
					x = room
					if x < amount(r.name, floor) {
						left := quantity(r.name, x)
						p.warnf("the pod-level %s request (%s) leaves the collector only %s; raise spec.resources.requests.%s",
							r.name, q.String(), left.String(), r.name)
					}
				}
			}
		}
		_, limited := res.Limits[r.name]
		switch {
		case x > 0:
			res.Requests[r.name] = quantity(r.name, x)
		case limited:
			// An explicit zero: without a request the API server would
			// default it to the limit, and Fargate would size the pod by it.
			res.Requests[r.name] = quantity(r.name, 0)
		default:
			delete(res.Requests, r.name)
		}
	}
	if podLevel != nil {
		for name, podLimit := range podLevel.Limits {
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
	if len(res.Requests) == 0 {
		res.Requests = nil
	}
	collector.Resources = *res
	return sizing{before: before, okBefore: okBefore, fit: fit}
}

// sizing is what sizeCollector found, for recordFargateSize.
type sizing struct {
	before        fargatesize.Size
	okBefore, fit bool
}

// recordFargateSize writes the Fargate size before and after injection and
// warns when injection crosses a step.
func (p *plan) recordFargateSize(pod *corev1.Pod, s sizing) {
	before, okBefore, fit := s.before, s.okBefore, s.fit
	after, _, okAfter := fargatesize.ForPod(&pod.Spec)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	switch {
	case !okBefore:
		p.warnf("the pod's requests exceed Fargate's largest size (%s)", fargatesize.Largest)
	case !okAfter:
		p.warnf("with the collector the pod's requests exceed Fargate's largest size (%s)", fargatesize.Largest)
	default:
		pod.Annotations[annotations.FargateSizeBefore] = before.String()
		pod.Annotations[annotations.FargateSizeAfter] = after.String()
		if before != after {
			how := "the collector raises"
			if fit {
				how = "even at its minimum requests the collector raises"
			}
			p.warnf("%s the pod's Fargate size from %s to %s; raise the app's requests to use the larger size, or set the annotation %s",
				how, before, after, annotations.CollectorResources)
		}
	}
}

// amount is milli-CPU for cpu and bytes for anything else.
func amount(name corev1.ResourceName, q resource.Quantity) int64 {
	if q.Sign() <= 0 {
		return 0
	}
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// quantity is the inverse of amount; memory is rounded down to whole MiB so
// that it prints readably.
func quantity(name corev1.ResourceName, x int64) resource.Quantity {
	if name == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(x, resource.DecimalSI)
	}
	if x >= 1<<20 {
		x = x >> 20 << 20
	}
	return *resource.NewQuantity(x, resource.BinarySI)
}

// memoryLimit is the collector's memory limit, zero when it has none.
func memoryLimit(c *corev1.Container) resource.Quantity {
	return c.Resources.Limits[corev1.ResourceMemory]
}
