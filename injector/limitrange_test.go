package injector

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func limitRange(name string, items ...corev1.LimitRangeItem) corev1.LimitRange {
	return corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.LimitRangeSpec{Limits: items}}
}

// res formats a container's resources for comparison: "cpu=req/lim memory=req/lim".
func res(c *corev1.Container, names ...corev1.ResourceName) string {
	var parts []string
	for _, n := range names {
		req, lim := "-", "-"
		if q, ok := c.Resources.Requests[n]; ok {
			req = q.String()
		}
		if q, ok := c.Resources.Limits[n]; ok {
			lim = q.String()
		}
		parts = append(parts, string(n)+"="+req+"/"+lim)
	}
	return strings.Join(parts, " ")
}

func initOf(t *testing.T, pod *corev1.Pod) *corev1.Container {
	t.Helper()
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == InitContainerName {
			return &pod.Spec.InitContainers[i]
		}
	}
	t.Fatal("no init container")
	return nil
}

// TestLimitRangeFitting: the injected containers' requests and limits are
// fitted into the namespace's LimitRanges the way LimitRanger validates them,
// or the pod is left alone with a warning that says why.
func TestLimitRangeFitting(t *testing.T) {
	cpu, mem, eph := corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage
	container := func(items ...corev1.LimitRangeItem) []corev1.LimitRange {
		return []corev1.LimitRange{limitRange("strict", items...)}
	}
	for _, tt := range []struct {
		name      string
		pod       *corev1.Pod
		lrs       []corev1.LimitRange
		collector string // res(collector, cpu, memory); "" when not injected
		init      string // res(init, cpu, memory)
		extra     func(t *testing.T, pod *corev1.Pod)
		warn      string
	}{
		{name: "no LimitRange: the defaults, limits on everything",
			collector: "cpu=100m/1 memory=128Mi/256Mi", init: "cpu=10m/100m memory=16Mi/64Mi"},
		{name: "container max", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("cpu", "500m", "memory", "128Mi")}),
			collector: "cpu=100m/500m memory=128Mi/128Mi", init: "cpu=10m/100m memory=16Mi/64Mi",
			warn: "the namespace's LimitRanges lower the collector's limits to cpu 500m (configured 1), memory 128Mi (configured 256Mi)"},
		{name: "container min", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: rl("cpu", "200m", "memory", "100Mi")}),
			collector: "cpu=200m/1 memory=128Mi/256Mi", init: "cpu=200m/200m memory=100Mi/100Mi"},
		{name: "container ratio: limits come down first", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: rl("cpu", "2", "memory", "1500m")}),
			collector: "cpu=100m/200m memory=128Mi/192Mi", init: "cpu=10m/20m memory=16Mi/24Mi"},
		{name: "ratio with a zero cpu request: the floor, then a request", pod: fargatePod("1", "", nil),
			lrs:       container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: rl("cpu", "4")}),
			collector: "cpu=13m/50m memory=128Mi/256Mi", init: "cpu=10m/40m memory=16Mi/64Mi"},
		{name: "ratio 1 (requests equal limits)", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: rl("memory", "1")}),
			collector: "cpu=100m/1 memory=128Mi/128Mi", init: "cpu=10m/100m memory=16Mi/16Mi"},
		{name: "several LimitRanges: the strictest of each", lrs: []corev1.LimitRange{
			limitRange("a", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("memory", "200Mi"), Min: rl("cpu", "20m")}),
			limitRange("b", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("memory", "160Mi"), Min: rl("cpu", "50m")}),
		}, collector: "cpu=100m/1 memory=128Mi/160Mi", init: "cpu=50m/100m memory=16Mi/64Mi"},
		{name: "another resource: LimitRanger's default, within max", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer,
			Max: rl("ephemeral-storage", "1Gi"), Default: rl("ephemeral-storage", "512Mi"), DefaultRequest: rl("ephemeral-storage", "64Mi")}),
			collector: "cpu=100m/1 memory=128Mi/256Mi", init: "cpu=10m/100m memory=16Mi/64Mi",
			extra: func(t *testing.T, pod *corev1.Pod) {
				if got := res(collectorOf(t, pod), eph); got != "ephemeral-storage=64Mi/512Mi" {
					t.Errorf("collector %s", got)
				}
			}},
		{name: "a max below the collector's floor", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: rl("memory", "48Mi")}),
			warn: "not injected: LimitRange strict allows a container at most 48Mi of memory, below the 64Mi that container otel-collector needs"},
		{name: "pod max: the collector gives way", pod: appWithLimits("500m", "400Mi"),
			lrs:       container(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: rl("memory", "512Mi", "cpu", "1")}),
			collector: "cpu=0/500m memory=112Mi/112Mi", init: "cpu=10m/100m memory=16Mi/64Mi",
			extra: func(t *testing.T, pod *corev1.Pod) {
				_, lim := podTotals(&pod.Spec)
				if lim.Memory().Cmp(resource.MustParse("512Mi")) > 0 || lim.Cpu().Cmp(resource.MustParse("1")) > 0 {
					t.Errorf("pod limits %v above the LimitRange", lim)
				}
			}},
		{name: "pod max leaves no room", pod: appWithLimits("500m", "480Mi"),
			lrs:  container(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: rl("memory", "512Mi")}),
			warn: "not injected: LimitRange strict allows at most 512Mi of memory per Pod, which the pod with the collector cannot fit"},
		{name: "pod ratio", pod: appWithLimits("500m", "256Mi"),
			lrs:       container(corev1.LimitRangeItem{Type: corev1.LimitTypePod, MaxLimitRequestRatio: rl("cpu", "2")}),
			collector: "cpu=0/500m memory=128Mi/256Mi", init: "cpu=10m/100m memory=16Mi/64Mi",
			extra: func(t *testing.T, pod *corev1.Pod) {
				req, lim := podTotals(&pod.Spec)
				if lim.Cpu().MilliValue() > 2*req.Cpu().MilliValue() {
					t.Errorf("pod cpu %v/%v above the ratio", req.Cpu(), lim.Cpu())
				}
			}},
		{name: "PVC items are not about pods", lrs: container(corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim, Max: rl("storage", "1Gi")}),
			collector: "cpu=100m/1 memory=128Mi/256Mi", init: "cpu=10m/100m memory=16Mi/64Mi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := tt.pod
			if pod == nil {
				pod = fargatePod("", "", nil)
			}
			cfg := DefaultConfig()
			cfg.Namespace.LimitRanges = tt.lrs
			r := mutateChecked(t, pod, cfg, nil)
			joined := strings.Join(r.Warnings, "\n")
			if tt.collector == "" {
				if r.Injected || r.Skip != SkipLimitRange || !strings.Contains(joined, tt.warn) {
					t.Fatalf("injected %v, skip %q, warnings %q: want a %s skip saying %q", r.Injected, r.Skip, r.Warnings, SkipLimitRange, tt.warn)
				}
				return
			}
			if !r.Injected {
				t.Fatalf("not injected: %v", r.Warnings)
			}
			if tt.warn != "" && !strings.Contains(joined, tt.warn) {
				t.Errorf("warnings %q lack %q", r.Warnings, tt.warn)
			}
			if got := res(collectorOf(t, r.Pod), cpu, mem); got != tt.collector {
				t.Errorf("collector %s, want %s", got, tt.collector)
			}
			if got := res(initOf(t, r.Pod), cpu, mem); got != tt.init {
				t.Errorf("init container %s, want %s", got, tt.init)
			}
			if err := limitRangerValidate(r.Pod, tt.lrs); err != nil {
				t.Errorf("LimitRanger would reject the pod: %v", err)
			}
			if tt.extra != nil {
				tt.extra(t, r.Pod)
			}
			gomem := envValue(collectorOf(t, r.Pod), "GOMEMLIMIT")
			lim := collectorOf(t, r.Pod).Resources.Limits[mem]
			if gomem != goMemLimit(lim) {
				t.Errorf("GOMEMLIMIT %s does not follow the fitted memory limit %s", gomem, lim.String())
			}
		})
	}
}

// appWithLimits is a Fargate pod whose app has requests equal to limits.
func appWithLimits(cpu, mem string) *corev1.Pod {
	pod := fargatePod(cpu, mem, nil)
	pod.Spec.Containers[0].Resources.Limits = rl("cpu", cpu, "memory", mem)
	return pod
}

// limitRangerValidate checks the injected containers and the pod as
// LimitRanger validates them (independently of the fitting code's own
// checks: every item of every LimitRange, one by one).
func limitRangerValidate(pod *corev1.Pod, lrs []corev1.LimitRange) error {
	var errs []string
	check := func(who string, r corev1.ResourceName, req, lim corev1.ResourceList, item corev1.LimitRangeItem) {
		rq, hasReq := req[r]
		lm, hasLim := lim[r]
		if v, ok := item.Min[r]; ok && (!hasReq || rq.Cmp(v) < 0 || (hasLim && lm.Cmp(v) < 0)) {
			errs = append(errs, who+": min "+string(r))
		}
		if v, ok := item.Max[r]; ok && (!hasLim || lm.Cmp(v) > 0 || (hasReq && rq.Cmp(v) > 0)) {
			errs = append(errs, who+": max "+string(r))
		}
		if v, ok := item.MaxLimitRequestRatio[r]; ok {
			if !hasReq || !hasLim || rq.IsZero() || float64(lm.MilliValue())/float64(rq.MilliValue()) > float64(v.MilliValue())/1000 {
				errs = append(errs, who+": ratio "+string(r))
			}
		}
	}
	for _, lr := range lrs {
		for _, item := range lr.Spec.Limits {
			names := map[corev1.ResourceName]bool{}
			for _, l := range []corev1.ResourceList{item.Min, item.Max, item.MaxLimitRequestRatio} {
				for r := range l {
					names[r] = true
				}
			}
			for r := range names {
				switch item.Type {
				case corev1.LimitTypeContainer:
					for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
						if c.Name == InitContainerName || c.Name == CollectorContainerName {
							check(c.Name, r, c.Resources.Requests, c.Resources.Limits, item)
						}
					}
				case corev1.LimitTypePod:
					req, lim := podTotals(&pod.Spec)
					check("pod", r, req, lim, item)
				}
			}
		}
	}
	if len(errs) > 0 {
		return &limitErr{strings.Join(errs, "; ")}
	}
	return nil
}

type limitErr struct{ s string }

func (e *limitErr) Error() string { return e.s }
