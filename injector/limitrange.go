package injector

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// LimitRanges and the injected containers.
//
// The API server's LimitRanger applies a namespace's LimitRange defaults
// before the mutating webhooks run, so the containers the injector adds get
// none; and it validates every container after them, against the min, max
// and maxLimitRequestRatio of the LimitRange items of type Container, and
// the pod's totals against those of type Pod. A pod that fails is rejected:
// a pod blocked by the injector. So the injected containers' requests and
// limits are fitted into the namespace's LimitRanges here, as LimitRanger
// computes them (plugin/pkg/admission/limitranger), or, when they cannot
// be, the pod is left alone with a warning.

// limitFloor is the least limit an injected container works with; fitting
// never goes below it. Milli-CPU for cpu, bytes otherwise.
func limitFloor(container string, r corev1.ResourceName) int64 {
	switch {
	case container == CollectorContainerName && r == corev1.ResourceCPU:
		return 50
	case container == CollectorContainerName && r == corev1.ResourceMemory:
		return 64 << 20
	case container == InitContainerName && r == corev1.ResourceCPU:
		return 10
	case container == InitContainerName && r == corev1.ResourceMemory:
		return 16 << 20
	case container == FollowerContainerName && r == corev1.ResourceCPU:
		return 10
	case container == FollowerContainerName && r == corev1.ResourceMemory:
		return 32 << 20
	}
	return 0
}

// bounds are the constraints of one resource, merged over the LimitRanges
// (every LimitRange applies: the largest min, the smallest max and ratio).
type bounds struct {
	min, max, ratio         *resource.Quantity
	defLimit, defRequest    *resource.Quantity
	minFrom, maxFrom, rFrom string // LimitRange names, for messages
}

func mergeBounds(lrs []corev1.LimitRange, typ corev1.LimitType) map[corev1.ResourceName]*bounds {
	out := map[corev1.ResourceName]*bounds{}
	get := func(r corev1.ResourceName) *bounds {
		if out[r] == nil {
			out[r] = &bounds{}
		}
		return out[r]
	}
	for _, lr := range lrs {
		for _, item := range lr.Spec.Limits {
			if item.Type != typ {
				continue
			}
			for r, q := range item.Min {
				if b := get(r); b.min == nil || q.Cmp(*b.min) > 0 {
					b.min, b.minFrom = ptr(q.DeepCopy()), lr.Name
				}
			}
			for r, q := range item.Max {
				if b := get(r); b.max == nil || q.Cmp(*b.max) < 0 {
					b.max, b.maxFrom = ptr(q.DeepCopy()), lr.Name
				}
			}
			for r, q := range item.MaxLimitRequestRatio {
				if b := get(r); b.ratio == nil || q.Cmp(*b.ratio) < 0 {
					b.ratio, b.rFrom = ptr(q.DeepCopy()), lr.Name
				}
			}
			for r, q := range item.Default {
				if b := get(r); b.defLimit == nil {
					b.defLimit = ptr(q.DeepCopy())
				}
			}
			for r, q := range item.DefaultRequest {
				if b := get(r); b.defRequest == nil {
					b.defRequest = ptr(q.DeepCopy())
				}
			}
		}
	}
	return out
}

func sortedResources[T any](m map[corev1.ResourceName]T) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ratioMilli is a maxLimitRequestRatio in thousandths (2 -> 2000, 1.5 -> 1500).
func ratioMilli(q *resource.Quantity) int64 { return q.MilliValue() }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// amounts of one resource of one container, in the units of amount().
type amounts struct {
	req, lim       int64
	hasReq, hasLim bool
}

func readAmounts(c *corev1.Container, r corev1.ResourceName) amounts {
	var a amounts
	if q, ok := c.Resources.Requests[r]; ok {
		a.req, a.hasReq = units(r, q), true
	}
	if q, ok := c.Resources.Limits[r]; ok {
		a.lim, a.hasLim = units(r, q), true
	}
	return a
}

func (a amounts) write(c *corev1.Container, r corev1.ResourceName) {
	if a.hasReq {
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		c.Resources.Requests[r] = fromUnits(r, a.req)
	}
	if a.hasLim {
		if c.Resources.Limits == nil {
			c.Resources.Limits = corev1.ResourceList{}
		}
		c.Resources.Limits[r] = fromUnits(r, a.lim)
	}
}

// units is milli-CPU for cpu and the value for anything else, rounded up
// (so that a limit never shrinks below what was meant).
func units(r corev1.ResourceName, q resource.Quantity) int64 {
	if r == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

func fromUnits(r corev1.ResourceName, x int64) resource.Quantity {
	if r == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(x, resource.DecimalSI)
	}
	if x%(1<<20) == 0 {
		return *resource.NewQuantity(x, resource.BinarySI)
	}
	return *resource.NewQuantity(x, resource.DecimalSI)
}

// fitContainer fits one injected container into the constraints of type
// Container, changing as little as it can: limits come down to the max,
// requests go up to the min, and for the ratio the limit comes down first
// (to the container's floor), then the request goes up.
func fitContainer(c *corev1.Container, cons map[corev1.ResourceName]*bounds) error {
	for _, r := range sortedResources(cons) {
		b := cons[r]
		a := readAmounts(c, r)
		floor := limitFloor(c.Name, r)
		// What LimitRanger's defaults would have given (it ran before us),
		// and the API server's own defaulting of a missing request.
		if !a.hasLim && b.defLimit != nil {
			a.lim, a.hasLim = units(r, *b.defLimit), true
		}
		if !a.hasReq && b.defRequest != nil {
			a.req, a.hasReq = units(r, *b.defRequest), true
		}
		if !a.hasReq && a.hasLim {
			a.req, a.hasReq = a.lim, true
		}
		if b.max != nil {
			maxV := units(r, *b.max)
			if maxV < floor {
				return fmt.Errorf("LimitRange %s allows a container at most %s of %s, below the %s that container %s needs",
					b.maxFrom, b.max.String(), r, quantityText(r, floor), c.Name)
			}
			if !a.hasLim || a.lim > maxV {
				a.lim, a.hasLim = maxV, true
			}
			if a.hasReq && a.req > maxV {
				a.req = maxV
			}
		}
		if b.min != nil {
			minV := units(r, *b.min)
			if !a.hasReq || a.req < minV {
				a.req, a.hasReq = minV, true
			}
			if a.hasLim && a.lim < minV {
				a.lim = minV
			}
		}
		if b.ratio != nil {
			rm := ratioMilli(b.ratio)
			if !a.hasLim {
				if !a.hasReq || a.req == 0 {
					return fmt.Errorf("LimitRange %s sets a %s limit/request ratio but no default, and container %s has no %s request or limit",
						b.rFrom, r, c.Name, r)
				}
				a.lim, a.hasLim = a.req, true
			}
			if a.lim*1000 > a.req*rm {
				a.lim = max(floor, min(a.lim, a.req*rm/1000))
				if a.lim*1000 > a.req*rm {
					a.req = ceilDiv(a.lim*1000, rm)
				}
			}
		}
		if a.hasReq && a.hasLim && a.req > a.lim {
			a.req = a.lim
		}
		a.write(c, r)
		if err := checkBounds(c.Name, "Container", r, b, a); err != nil {
			return err
		}
	}
	return nil
}

// checkBounds is LimitRanger's validation of one resource.
func checkBounds(who, typ string, r corev1.ResourceName, b *bounds, a amounts) error {
	if b.min != nil {
		minV := units(r, *b.min)
		if !a.hasReq || a.req < minV || (a.hasLim && a.lim < minV) {
			return fmt.Errorf("LimitRange %s wants at least %s of %s per %s, which %s cannot fit", b.minFrom, b.min.String(), r, typ, who)
		}
	}
	if b.max != nil {
		maxV := units(r, *b.max)
		if !a.hasLim || a.lim > maxV || (a.hasReq && a.req > maxV) {
			return fmt.Errorf("LimitRange %s allows at most %s of %s per %s, which %s cannot fit", b.maxFrom, b.max.String(), r, typ, who)
		}
	}
	if b.ratio != nil {
		if !a.hasReq || !a.hasLim || a.req == 0 || a.lim == 0 || a.lim*1000 > a.req*ratioMilli(b.ratio) {
			return fmt.Errorf("LimitRange %s allows a %s limit at most %s times the request per %s, which %s cannot fit", b.rFrom, r, b.ratio.String(), typ, who)
		}
	}
	return nil
}

func quantityText(r corev1.ResourceName, x int64) string {
	v := fromUnits(r, x)
	return v.String()
}

// podTotals are the pod's requests and limits as LimitRanger adds them up
// for LimitRange items of type Pod: the regular containers and native
// sidecars, or an init container with the sidecars started before it when
// that is more; pod-level resources, when set, instead.
func podTotals(spec *corev1.PodSpec) (req, lim corev1.ResourceList) {
	total := func(get func(*corev1.Container) corev1.ResourceList, podLevel corev1.ResourceList) corev1.ResourceList {
		sum := corev1.ResourceList{}
		add := func(dst, src corev1.ResourceList) {
			for r, v := range src {
				cur := dst[r]
				cur.Add(v)
				dst[r] = cur
			}
		}
		for i := range spec.Containers {
			add(sum, get(&spec.Containers[i]))
		}
		sidecars, initMax := corev1.ResourceList{}, corev1.ResourceList{}
		for i := range spec.InitContainers {
			c := &spec.InitContainers[i]
			var this corev1.ResourceList
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				add(sum, get(c))
				add(sidecars, get(c))
				this = sidecars.DeepCopy()
			} else {
				this = corev1.ResourceList{}
				add(this, get(c))
				add(this, sidecars)
			}
			for r, v := range this {
				if cur, ok := initMax[r]; !ok || v.Cmp(cur) > 0 {
					initMax[r] = v.DeepCopy()
				}
			}
		}
		for r, v := range initMax {
			if cur, ok := sum[r]; !ok || v.Cmp(cur) > 0 {
				sum[r] = v.DeepCopy()
			}
		}
		for r, v := range podLevel {
			if r == corev1.ResourceCPU || r == corev1.ResourceMemory {
				sum[r] = v.DeepCopy()
			}
		}
		return sum
	}
	var podReq, podLim corev1.ResourceList
	if spec.Resources != nil {
		podReq, podLim = spec.Resources.Requests, spec.Resources.Limits
	}
	req = total(func(c *corev1.Container) corev1.ResourceList { return c.Resources.Requests }, podReq)
	lim = total(func(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits }, podLim)
	return req, lim
}

func podAmounts(spec *corev1.PodSpec, r corev1.ResourceName) amounts {
	req, lim := podTotals(spec)
	var a amounts
	if v, ok := req[r]; ok {
		a.req, a.hasReq = units(r, v), true
	}
	if v, ok := lim[r]; ok {
		a.lim, a.hasLim = units(r, v), true
	}
	return a
}

// podBounds are the constraints of type Pod that the pod meets without the
// injected containers: one it fails on its own is the user's to fix (the API
// server rejects it with or without us).
func podBounds(orig *corev1.PodSpec, lrs []corev1.LimitRange) map[corev1.ResourceName]*bounds {
	cons := mergeBounds(lrs, corev1.LimitTypePod)
	for r, b := range cons {
		if checkBounds("", "Pod", r, b, podAmounts(orig, r)) != nil {
			delete(cons, r)
		}
	}
	return cons
}

// fitPod makes the pod's totals fit the constraints of type Pod by taking
// from the collector (down to its floor), the one injected container that
// counts for the whole life of the pod.
func fitPod(pod *corev1.Pod, collector *corev1.Container, cons map[corev1.ResourceName]*bounds) error {
	for _, r := range sortedResources(cons) {
		b := cons[r]
		floor := limitFloor(collector.Name, r)
		p := podAmounts(&pod.Spec, r)
		c := readAmounts(collector, r)
		if b.max != nil {
			maxV := units(r, *b.max)
			if p.hasLim && p.lim > maxV && c.hasLim {
				c.lim = max(floor, c.lim-(p.lim-maxV))
			}
			if p.hasReq && p.req > maxV && c.hasReq {
				c.req = max(0, c.req-(p.req-maxV))
			}
			c.req = min(c.req, c.lim)
			c.write(collector, r)
			p = podAmounts(&pod.Spec, r)
		}
		if b.ratio != nil && p.hasReq && p.hasLim && p.req > 0 {
			rm := ratioMilli(b.ratio)
			if excess := p.lim - p.req*rm/1000; excess > 0 && c.hasLim {
				c.lim = max(floor, c.lim-excess)
				c.write(collector, r)
				p = podAmounts(&pod.Spec, r)
			}
			if p.lim*1000 > p.req*rm && c.hasReq {
				c.req += ceilDiv(p.lim*1000, rm) - p.req
				c.req = min(c.req, c.lim)
				c.write(collector, r)
				p = podAmounts(&pod.Spec, r)
			}
		}
		if err := checkBounds("the pod with the collector", "Pod", r, b, p); err != nil {
			return err
		}
	}
	return nil
}

// fitLimitRanges fits the injected containers of pod into the namespace's
// LimitRanges; an error says why they cannot be.
func (p *plan) fitLimitRanges(orig *corev1.PodSpec, pod *corev1.Pod) error {
	lrs := p.cfg.Namespace.LimitRanges
	if len(lrs) == 0 {
		return nil
	}
	ours := []string{InitContainerName, CollectorContainerName, FollowerContainerName}
	perContainer := mergeBounds(lrs, corev1.LimitTypeContainer)
	perPod := podBounds(orig, lrs)
	var collector *corev1.Container
	fitAll := func() error {
		for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range list {
				c := &list[i]
				if !slices.Contains(ours, c.Name) {
					continue
				}
				if c.Name == CollectorContainerName {
					collector = c
				}
				if err := fitContainer(c, perContainer); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var before corev1.ResourceList
	if c, _ := findContainer(pod, CollectorContainerName); c != nil {
		before = c.Resources.Limits.DeepCopy()
	}
	if err := fitAll(); err != nil {
		return err
	}
	if len(perPod) == 0 || collector == nil {
		if collector != nil {
			p.warnLoweredLimits(before, collector.Resources.Limits)
		}
		return nil
	}
	if err := fitPod(pod, collector, perPod); err != nil {
		return err
	}
	// Taking from the collector for the pod may have moved it out of the
	// container constraints: fitting again only raises requests or lowers
	// limits toward them, and the pod is checked once more.
	if err := fitAll(); err != nil {
		return err
	}
	for _, r := range sortedResources(perPod) {
		if err := checkBounds("the pod with the collector", "Pod", r, perPod[r], podAmounts(&pod.Spec, r)); err != nil {
			return err
		}
	}
	p.warnLoweredLimits(before, collector.Resources.Limits)
	return nil
}

// warnLoweredLimits says when the LimitRanges left the collector less than
// its configured limits: it may be throttled or shed load.
func (p *plan) warnLoweredLimits(before, after corev1.ResourceList) {
	var lowered []string
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		b, hadB := before[r]
		a, hasA := after[r]
		if hadB && hasA && a.Cmp(b) < 0 {
			lowered = append(lowered, fmt.Sprintf("%s %s (configured %s)", r, a.String(), b.String()))
		}
	}
	if len(lowered) > 0 {
		p.warnf("the namespace's LimitRanges lower the collector's limits to %s; if it is throttled or drops data, raise its requests with the annotation %s",
			strings.Join(lowered, ", "), annotations.CollectorResources)
	}
}

// limitRangeNames lists the LimitRanges, for messages.
func limitRangeNames(lrs []corev1.LimitRange) string {
	names := make([]string, len(lrs))
	for i, lr := range lrs {
		names[i] = lr.Name
	}
	return strings.Join(names, ", ")
}
