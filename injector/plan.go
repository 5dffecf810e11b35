package injector

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// plan is what the injector decided about a pod before changing it. Mutate
// and ImagesToResolve share it, so that they agree on which containers need
// an image look-up.
type plan struct {
	cfg      Config
	opts     annotations.Options
	signals  SignalSettings
	selected []selected
	warnings []string
	// grace is the pod's termination grace period, in seconds.
	grace int64
	// namespaceMode is the namespace's kubelet stats mode as allowed,
	// whatever the pod's metrics and the CA (for the api log source).
	namespaceMode KubeletStatsMode
}

// selected is one container whose telemetry is captured.
type selected struct {
	name string
	init bool
	// command is the annotation's command for this container, if any.
	command []string
}

// warnf records an admission warning.
func (p *plan) warnf(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

// newPlan decides whether and what to inject. A non-empty reason means the
// pod is left alone; the message says why.
func newPlan(pod *corev1.Pod, cfg Config) (*plan, SkipReason, string) {
	if _, ok := pod.Annotations[annotations.Status]; ok {
		return nil, SkipAlreadyInjected, ""
	}
	if pod.Labels[annotations.Inject] == annotations.Disabled || pod.Annotations[annotations.Inject] == annotations.Disabled {
		return nil, SkipOptedOut, ""
	}
	if cfg.Scope != ScopeAll && !IsFargate(pod) {
		return nil, SkipNotFargate, fmt.Sprintf("not injected: the pod does not run on Fargate (no %s label, schedulerName is not %s); the injector's scope is %q",
			FargateProfileLabel, FargateScheduler, ScopeFargate)
	}
	if pod.Spec.OS != nil && pod.Spec.OS.Name == corev1.Windows {
		return nil, SkipWindows, "not injected: Windows pods are not supported"
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, SkipInvalid, "not injected: the pod has no containers"
	}

	p := &plan{cfg: cfg, grace: int64(corev1.DefaultTerminationGracePeriodSeconds)}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		p.grace = *g
	}
	var warns []string
	p.opts, warns = annotations.Parse(pod.Annotations)
	p.warnings = append(p.warnings, warns...)

	p.signals = cfg.Signals
	if o := p.opts.Logs; o != nil {
		p.signals.Logs = *o
	}
	if o := p.opts.Metrics; o != nil {
		p.signals.Metrics = *o
	}
	if o := p.opts.Traces; o != nil {
		p.signals.Traces = *o
	}
	if !p.signals.Logs && !p.signals.Metrics && !p.signals.Traces {
		return nil, SkipNoSignals, "not injected: logs, metrics and traces are all disabled"
	}

	if msg := conflicts(pod, cfg); msg != "" {
		return nil, SkipConflict, "not injected: " + msg
	}
	if !cfg.NativeSidecars {
		switch pod.Spec.RestartPolicy {
		case corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure:
			return nil, SkipNeedsSidecars, fmt.Sprintf("not injected: restartPolicy %s needs native sidecars (Kubernetes >= 1.29), "+
				"or the collector would keep the pod running after its containers finished", pod.Spec.RestartPolicy)
		}
	}

	p.namespaceMode = p.nodeProxyMode()
	if p.signals.Metrics {
		p.cfg.KubeletStats.Mode = p.kubeletStatsMode(pod)
	}
	p.selected = p.selectContainers(pod)
	return p, "", ""
}

// kubeletStatsMode picks the pod's kubelet stats mode: the namespace's label
// when the injector allows that mode, else the default; and off, in mode
// proxy, while the proxy's CA is not in the namespace (the collector could
// not start without it).
func (p *plan) kubeletStatsMode(pod *corev1.Pod) KubeletStatsMode {
	ks := p.cfg.KubeletStats
	mode := ks.Mode
	if _, ok := pod.Labels[annotations.KubeletStats]; ok {
		p.warnf("pod label %s is ignored: the kubelet stats mode is chosen per namespace, by a cluster admin, with the namespace label of that name", annotations.KubeletStats)
	}
	if v, ok := p.cfg.Namespace.Labels[annotations.KubeletStats]; ok {
		switch m := KubeletStatsMode(v); {
		case !m.valid():
			p.warnf("namespace label %s=%q is not proxy, direct or off; kubelet stats use the default mode %s", annotations.KubeletStats, v, mode)
		case !ks.Allows(m):
			p.warnf("namespace label %s=%s asks for a mode this injector does not allow (kubeletStats.allowedModes: %s); kubelet stats use the default mode %s. A cluster admin can allow it in the injector's configuration",
				annotations.KubeletStats, v, joinModes(ks.Modes()), mode)
		default:
			mode = m
		}
	}
	if mode == KubeletStatsProxy && p.cfg.Namespace.NodeProxyCA == Missing {
		where := "the pod's namespace"
		if pod.Namespace != "" {
			where = "namespace " + pod.Namespace
		}
		if why := p.cfg.Namespace.NodeProxyCAError; why != "" {
			p.warnf("kubelet stats are off for this pod: the ConfigMap %s, which holds the node proxy's CA, is not in %s, and the injector could not publish it: %s. Fix that, then re-create the pod (kubectl rollout restart for a Deployment)",
				ks.NodeProxy.CAConfigMap, where, why)
		} else {
			p.warnf("kubelet stats are off for this pod: the ConfigMap %s, which holds the node proxy's CA, is not in %s yet. The injector publishes it within seconds into namespaces labelled %s=%s; check that label, then re-create the pod (kubectl rollout restart for a Deployment)",
				ks.NodeProxy.CAConfigMap, where, annotations.Inject, annotations.Enabled)
		}
		mode = KubeletStatsOff
	}
	return mode
}

// NeedsNodeProxyCA says whether Mutate would inject pod in kubelet stats
// mode proxy, or may give a container the api log source, were the node
// proxy's CA in its namespace: the webhook then
// publishes a Missing CA ConfigMap itself before calling Mutate, rather than
// leaving the pod without kubelet stats until the injector's publisher gets
// to the namespace. It never panics.
func NeedsNodeProxyCA(pod *corev1.Pod, cfg Config) (needs bool) {
	if pod == nil {
		return false
	}
	defer func() {
		if recover() != nil {
			needs = false
		}
	}()
	cfg.Namespace.NodeProxyCA = Present
	p, skip, _ := newPlan(pod, cfg)
	return skip == "" && (p.signals.Metrics && p.cfg.KubeletStats.Mode == KubeletStatsProxy || p.mayFollow(pod))
}

func joinModes(ms []KubeletStatsMode) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// IsFargate says whether a pod will run on EKS Fargate: the Fargate profile
// label (set by EKS's own webhook) or the Fargate scheduler.
func IsFargate(pod *corev1.Pod) bool {
	if _, ok := pod.Labels[FargateProfileLabel]; ok {
		return true
	}
	return pod.Spec.SchedulerName == FargateScheduler
}

// conflicts reports names, paths or ports of the pod that the injection
// would clash with. Such a pod is left alone rather than half-injected.
func conflicts(pod *corev1.Pod, cfg Config) string {
	ours := []string{InitContainerName, CollectorContainerName, FollowerContainerName}
	var found []string
	visit(pod, func(c *corev1.Container, _ bool) {
		if slices.Contains(ours, c.Name) {
			found = append(found, "container "+c.Name)
		}
		for _, port := range c.Ports {
			if port.ContainerPort == otlpGRPCPort || port.ContainerPort == otlpHTTPPort || port.ContainerPort == cfg.Collector.HealthCheckPort {
				found = append(found, fmt.Sprintf("port %d of container %s (the collector listens on %d, %d and %d)",
					port.ContainerPort, c.Name, otlpGRPCPort, otlpHTTPPort, cfg.Collector.HealthCheckPort))
			}
		}
	})
	for _, ec := range pod.Spec.EphemeralContainers {
		if slices.Contains(ours, ec.Name) {
			found = append(found, "ephemeral container "+ec.Name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "fargate-otel-") {
			found = append(found, "volume "+v.Name)
		}
	}
	if len(found) == 0 {
		return ""
	}
	return "the pod already has " + strings.Join(found, ", ") + "; rename them or opt the pod out with the label " + annotations.Inject + "=" + annotations.Disabled
}

// visit calls f for every init container and container of the pod.
func visit(pod *corev1.Pod, f func(c *corev1.Container, init bool)) {
	for i := range pod.Spec.InitContainers {
		f(&pod.Spec.InitContainers[i], true)
	}
	for i := range pod.Spec.Containers {
		f(&pod.Spec.Containers[i], false)
	}
}

// selectContainers picks the containers whose telemetry is captured: the
// annotation's list, or every regular container.
func (p *plan) selectContainers(pod *corev1.Pod) []selected {
	want := p.opts.Containers
	var out []selected
	seen := map[string]bool{}
	add := func(c *corev1.Container, init bool) {
		if seen[c.Name] || slices.Contains(p.opts.SkipContainers, c.Name) {
			return
		}
		seen[c.Name] = true
		out = append(out, selected{name: c.Name, init: init})
	}
	if len(want) == 0 {
		for i := range pod.Spec.Containers {
			add(&pod.Spec.Containers[i], false)
		}
	} else {
		for _, name := range want {
			c, init := findContainer(pod, name)
			if c == nil {
				p.warnf("annotation %s names container %q, which the pod does not have", annotations.Containers, name)
				continue
			}
			add(c, init)
		}
	}
	for _, name := range p.opts.SkipContainers {
		if c, _ := findContainer(pod, name); c == nil {
			p.warnf("annotation %s names container %q, which the pod does not have", annotations.SkipContainers, name)
		}
	}

	// The command annotation: per container, or one array for the one
	// captured container that has no command in the spec.
	for name := range p.opts.Commands {
		if !seen[name] {
			p.warnf("annotation %s gives a command for %q, which is not a captured container", annotations.Command, name)
		}
	}
	var lacking []int
	for i := range out {
		c, _ := findContainer(pod, out[i].name)
		if cmd, ok := p.opts.Commands[out[i].name]; ok {
			out[i].command = cmd
		}
		if len(c.Command) == 0 {
			lacking = append(lacking, i)
		}
	}
	if p.opts.Command != nil {
		switch {
		case len(lacking) == 1 && out[lacking[0]].command == nil:
			out[lacking[0]].command = p.opts.Command
		case len(lacking) > 1:
			p.warnf("annotation %s is one command but %d captured containers have no command; write an object such as {\"%s\":[...]}",
				annotations.Command, len(lacking), out[lacking[0]].name)
		default:
			p.warnf("annotation %s is not used: every captured container has a command in its spec", annotations.Command)
		}
	}
	return out
}

func findContainer(pod *corev1.Pod, name string) (*corev1.Container, bool) {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], false
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], true
		}
	}
	return nil, false
}
