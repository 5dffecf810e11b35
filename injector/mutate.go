package injector

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Mutate injects fargate-otel into a copy of pod: see DESIGN.md, "What a
// pod looks like after injection". It is pure (no I/O: entrypoints come in
// images, a pod's exporters ConfigMap in cfg), never modifies its input,
// never panics, only adds to the pod (it never removes or reorders a user's
// field: a wrapped container's command gains a prefix, its args stay), and
// is idempotent: a pod it injected carries the status annotation and is
// returned unchanged. Whatever goes wrong, the pod is returned usable, with
// warnings saying what was skipped and why.
func Mutate(pod *corev1.Pod, cfg Config, images Images) (res Result) {
	if pod == nil {
		return Result{Skip: SkipInvalid, Warnings: []string{warning("not injected: no pod")}}
	}
	defer func() {
		if r := recover(); r != nil {
			res = Result{Pod: safeCopy(pod), Skip: SkipInternalError, Warnings: []string{
				warning(fmt.Sprintf("not injected because of an internal error (%v); the pod is admitted unchanged, please report this", r)),
			}}
		}
	}()

	out := pod.DeepCopy()
	p, skip, msg := newPlan(out, cfg)
	if skip != "" {
		res := Result{Pod: out, Skip: skip}
		if msg != "" {
			res.Warnings = []string{warning(msg)}
		}
		return res
	}
	status, skip, msg := p.inject(out, &pod.Spec, images)
	if skip != "" {
		p.warnf("%s", msg)
		return Result{Pod: pod.DeepCopy(), Skip: skip, Warnings: warnings(p.warnings)}
	}
	return Result{Pod: out, Injected: true, Warnings: warnings(p.warnings), Status: status}
}

// inject changes pod (a copy) according to the plan. orig is the spec
// before injection: the caller's, read only (no second copy).
func (p *plan) inject(pod *corev1.Pod, orig *corev1.PodSpec, images Images) (*Status, SkipReason, string) {
	cfg := p.cfg
	status := &Status{Version: StatusVersion, KubeletStats: string(cfg.KubeletStats.Mode)}
	if !p.signals.Metrics {
		status.KubeletStats = string(KubeletStatsOff)
	}
	for _, s := range []struct {
		on   bool
		name sidecarconfig.Signal
	}{{p.signals.Logs, sidecarconfig.Logs}, {p.signals.Metrics, sidecarconfig.Metrics}, {p.signals.Traces, sidecarconfig.Traces}} {
		if s.on {
			status.Signals = append(status.Signals, string(s.name))
		}
	}

	// 1. The app containers: wrapped command, mounts, OTLP env.
	type wrapping struct {
		c    *corev1.Container
		argv argv
	}
	var wraps []wrapping
	var followed []string
	for _, s := range p.selected {
		c, _ := findContainer(pod, s.name)
		if p.signals.Logs {
			src, a, why := p.chooseLogSource(c, s, images)
			if why != "" {
				p.warnf("%s", why)
			}
			switch src {
			case LogSourceWrap:
				wraps = append(wraps, wrapping{c, a})
			case LogSourceAPI:
				followed = append(followed, c.Name)
				status.Unwrapped = append(status.Unwrapped, c.Name)
			default:
				status.Unwrapped = append(status.Unwrapped, c.Name)
			}
			status.setLogSource(c.Name, src)
		}
		if p.signals.Traces || p.signals.Metrics {
			added, why := addOTLPEnv(c)
			if added {
				status.OTLPEnv = append(status.OTLPEnv, c.Name)
			} else if why != "" {
				p.warnf("%s", why)
			}
		}
	}
	// The wrappers and the follower share the logs volume: a budget for
	// each container, whatever its source.
	flags, why := p.logFlags(len(wraps) + len(followed))
	if len(wraps)+len(followed) > 0 && why != "" {
		p.warnf("%s", why)
	}
	wrapped := make([]string, len(wraps))
	for i, w := range wraps {
		wrapped[i] = w.c.Name
	}
	rates := p.rateLimits(wrapped, followed)
	if len(wraps) > 0 {
		for _, w := range wraps {
			w.c.Command = wrap(w.c.Name, flags, rates[w.c.Name], w.argv.words)
			w.c.VolumeMounts = append(w.c.VolumeMounts, appMounts()...)
			status.Containers = append(status.Containers, w.c.Name)
		}
	}

	// 2. Volumes (room for the collector's token too: one copy of the
	// user's volumes, not one per append).
	pod.Spec.Volumes = slices.Grow(pod.Spec.Volumes, 4)
	if len(wraps) > 0 {
		pod.Spec.Volumes = append(pod.Spec.Volumes, binVolume())
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, logsVolume(p.logsVolumeSize()))
	if len(wraps) > 0 {
		pod.Spec.Volumes = append(pod.Spec.Volumes, podInfoVolume())
	}

	// 3. The collector and its kubelet stats credentials.
	native := cfg.NativeSidecars
	collector := collectorContainer(cfg, corev1.ResourceRequirements{}, p.signals.Logs, native)
	collector.Lifecycle = preStopSleep(p.preStopSeconds())
	ks := sidecarconfig.KubeletStats{Disabled: true}
	if p.signals.Metrics {
		ks = kubeletStatsAccess(pod, cfg, &collector)
	}
	fleetAccess(pod, cfg, p.opts.Exporters, &collector)

	// 4. Init containers first: the installer, then (native) the collector,
	// so that user init containers are already captured and can send OTLP.
	var front []corev1.Container
	if len(wraps) > 0 {
		front = append(front, initContainer(cfg))
	}
	if native {
		front = append(front, collector)
		status.Collector = "native-sidecar"
		// After the collector: native sidecars stop in reverse order, so
		// the follower stops first and the collector reads its last lines.
		if len(followed) > 0 {
			front = append(front, p.addFollower(pod, followed, flags))
		}
	} else {
		status.Collector = "container"
	}
	if len(front) > 0 {
		pod.Spec.InitContainers = append(front, pod.Spec.InitContainers...)
	}
	if !native {
		pod.Spec.Containers = append(pod.Spec.Containers, collector)
	}
	cp := p.collectorInPod(pod, native)

	// 5. Resources: Fargate fitting, the namespace's LimitRanges, the size
	// annotations; then the config (sized from the memory limit).
	p.fitFollower(orig, pod)
	sz := p.sizeCollector(orig, pod, cp)
	if err := p.fitLimitRanges(orig, pod); err != nil {
		return nil, SkipLimitRange, fmt.Sprintf("not injected: %v. The API server would reject the pod with the injected containers; "+
			"relax the namespace's LimitRanges (%s), or opt the pod out with the label %s=%s",
			err, limitRangeNames(p.cfg.Namespace.LimitRanges), annotations.Inject, annotations.Disabled)
	}
	p.recordFargateSize(pod, sz)
	if err := p.setCollectorConfig(cp, ks, status); err != nil {
		return nil, SkipConfigError, "not injected: " + err.Error()
	}

	// 6. The status annotation.
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	raw, err := json.Marshal(status)
	if err != nil {
		return nil, SkipInternalError, "not injected: " + err.Error()
	}
	pod.Annotations[annotations.Status] = string(raw)
	return status, "", ""
}

// collectorInPod finds the collector container after it was placed.
func (p *plan) collectorInPod(pod *corev1.Pod, native bool) *corev1.Container {
	list := pod.Spec.Containers
	if native {
		list = pod.Spec.InitContainers
	}
	for i := range list {
		if list[i].Name == CollectorContainerName {
			return &list[i]
		}
	}
	panic("collector container not placed")
}

// setCollectorConfig puts the collector's settings into the container's
// env, with GOMEMLIMIT from its memory limit, and the hash of the config
// they render into the status. Exporters a pod chose that do not render
// fall back to the cluster's.
func (p *plan) setCollectorConfig(c *corev1.Container, ks sidecarconfig.KubeletStats, status *Status) error {
	limit := memoryLimit(c)
	if limit.Value() > 0 && limit.Value() < sidecarconfig.MinMemoryLimitMiB<<20 {
		p.warnf("the collector's memory limit %s is below the %dMi it needs; it may be killed", limit.String(), sidecarconfig.MinMemoryLimitMiB)
	}
	cc := p.collectorConfig(ks, limit)
	rendered, err := render(cc)
	if err != nil && p.opts.Exporters != nil {
		p.warnf("the exporters of annotation %s do not make a valid collector config (%v); the cluster's default exporters are used", annotations.Exporters, err)
		p.opts.Exporters = nil
		cc = p.collectorConfig(ks, limit)
		rendered, err = render(cc)
	}
	if err != nil {
		return fmt.Errorf("the collector config cannot be rendered (%w); fix the injector's configuration", err)
	}
	if limit.Value() > 0 {
		c.Env = append(c.Env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: goMemLimit(limit)})
	}
	c.Env = append(c.Env,
		corev1.EnvVar{Name: ShutdownTimeoutEnv, Value: p.shutdownTimeout().String()},
		corev1.EnvVar{Name: sidecarconfig.SettingsEnvVar, Value: rendered.settings})
	status.ConfigHash = rendered.hash
	return nil
}

// logFlags are the wrapper flags for n wrapped containers.
func (p *plan) logFlags(n int) (teeFlags, string) {
	maxSize := p.cfg.Logs.MaxSize
	if p.opts.LogMaxSize != nil {
		maxSize = *p.opts.LogMaxSize
	}
	backups := p.cfg.Logs.MaxBackups
	if p.opts.LogMaxBackups != nil {
		backups = *p.opts.LogMaxBackups
	}
	format := p.cfg.Logs.Format
	if p.opts.LogFormat != "" {
		format = p.opts.LogFormat
	}
	return logFlags(p.logsVolumeSize(), maxSize, backups, format, n)
}

func (p *plan) logsVolumeSize() resource.Quantity {
	if p.opts.LogsVolumeSize != nil {
		return *p.opts.LogsVolumeSize
	}
	return p.cfg.Logs.VolumeSizeLimit
}

// warning formats one admission warning: prefixed, on one line.
func warning(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	return "fargate-otel: " + msg
}

func warnings(msgs []string) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if w := warning(m); !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// safeCopy copies the pod for a result after a panic; if even copying
// panics, the caller gets its own pod back (it is not modified here).
func safeCopy(pod *corev1.Pod) (c *corev1.Pod) {
	defer func() {
		if recover() != nil {
			c = pod
		}
	}()
	return pod.DeepCopy()
}
