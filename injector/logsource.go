package injector

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// Log sources: where a captured container's logs come from.
//
//   - wrap: the wrapper in front of the container's command writes both
//     streams to the logs volume (needs the command).
//   - api: the follower, a native sidecar of the pod, reads the container's
//     log from the kubelet (containerLogs, follow, timestamps) through the
//     node proxy, which serves a pod its own containers only, and writes it
//     to the logs volume in the wrapper's layout and format. It needs no
//     command, but the kubelet merges the two streams: every line is stdout.
//
// The collector reads both with its one file_log pipeline. A container
// gets wrap when its command is known, else api where the pod can use it
// (LogSourceAuto); the annotation fargate-otel.io/log-source forces one.

// LogSource is the log source a container got, as the status says it.
type LogSource string

const (
	LogSourceWrap LogSource = "wrap"
	LogSourceAPI  LogSource = "api"
	// LogSourceNone: the container's logs are wanted, but no source applies
	// (its command is unknown and the api source cannot be used, or wrap
	// was forced); the warnings say why.
	LogSourceNone LogSource = "none"
)

// FollowerContainerName is the native sidecar of the api log source. It
// runs the tee image's `fargate-otel-tee follow`.
const FollowerContainerName = "fargate-otel-follow"

// FollowerSettings configure the api log source.
type FollowerSettings struct {
	// Enabled lets containers use the api log source (default true): with
	// false, auto never picks it and a forced api falls back to wrap.
	Enabled bool `json:"enabled"`
	// Resources of the follower container; its requests count in the
	// pod's Fargate size.
	Resources corev1.ResourceRequirements `json:"resources"`
}

func defaultFollowerSettings() FollowerSettings {
	return FollowerSettings{
		Enabled: true,
		// It holds one 64 KiB read buffer and one HTTP/1.1 connection per
		// followed container (about 8 MiB peak RSS measured for a 20 MiB
		// line); its CPU is per line, like the wrapper's.
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("500m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		},
	}
}

func (f FollowerSettings) validate() []string {
	var errs []string
	for name, req := range f.Resources.Requests {
		if lim, ok := f.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Sprintf("follower.resources: the %s request %s is above its limit %s", name, req.String(), lim.String()))
		}
	}
	if lim, ok := f.Resources.Limits[corev1.ResourceMemory]; ok && lim.Cmp(resource.MustParse(followerMinMemory)) < 0 {
		errs = append(errs, fmt.Sprintf("follower.resources.limits.memory %s is below the %s the follower needs", lim.String(), followerMinMemory))
	}
	return errs
}

// followerMinMemory is the least memory limit the follower works with.
const followerMinMemory = "32Mi"

// followerDrainMax is the follower's longest drain on SIGTERM: it stops
// after the app containers have, and their streams then end at once (the
// kubelet closes them), so the bound matters only when something hangs.
const followerDrainMax = 5 * time.Second

// wantedLogSource is what the annotation asks for the container: its own
// entry, else the one for every container, else auto.
func (p *plan) wantedLogSource(name string) string {
	if v, ok := p.opts.LogSource[name]; ok {
		return v
	}
	if v, ok := p.opts.LogSource[annotations.AllContainers]; ok {
		return v
	}
	return annotations.LogSourceAuto
}

// apiUnavailable says why the pod cannot use the api log source, or "".
// The follower reads through the node proxy with a token of the proxy's
// audience and verifies it with the proxy's CA, which mode proxy provides;
// it must be a native sidecar (a regular container would keep a Job's pod
// running), and declared after the collector so that it stops first.
func (p *plan) apiUnavailable() string {
	switch {
	case !p.cfg.Follower.Enabled:
		return "the api log source is turned off in the injector's configuration (follower.enabled)"
	case !p.cfg.NativeSidecars:
		return "the api log source needs native sidecars (Kubernetes >= 1.29)"
	}
	switch mode := p.namespaceMode; {
	case !p.cfg.KubeletStats.Allows(KubeletStatsProxy):
		return "the api log source reads through the node proxy, which this injector does not run (kubeletStats.allowedModes has no proxy)"
	case mode != KubeletStatsProxy:
		return fmt.Sprintf("the api log source reads through the node proxy, and the namespace's kubelet stats mode is %s, not %s", mode, KubeletStatsProxy)
	case p.cfg.Namespace.NodeProxyCA == Missing:
		return fmt.Sprintf("the api log source needs the node proxy's CA (ConfigMap %s), which is not in the namespace yet; re-create the pod once it is",
			p.cfg.KubeletStats.NodeProxy.CAConfigMap)
	}
	return ""
}

// nodeProxyMode is the namespace's kubelet stats mode as the injector
// allows it (kubeletStatsMode without its warnings and its CA check, also
// when the pod's metrics are off): the node proxy serves the pod in mode
// proxy only. newPlan keeps it in namespaceMode.
func (p *plan) nodeProxyMode() KubeletStatsMode {
	ks := p.cfg.KubeletStats
	mode := ks.Mode
	if v, ok := p.cfg.Namespace.Labels[annotations.KubeletStats]; ok {
		if m := KubeletStatsMode(v); m.valid() && ks.Allows(m) {
			mode = m
		}
	}
	return mode
}

// chooseLogSource decides the log source of one captured container: wrap
// (with what the wrapper runs), api, or none; and a warning, if any.
func (p *plan) chooseLogSource(c *corev1.Container, s selected, images Images) (LogSource, argv, string) {
	var a argv
	why := ""
	if clash := mountClash(c); clash != "" {
		why = fmt.Sprintf("container %s is not captured: it already mounts %s", c.Name, clash)
	} else {
		a, why = originalCommand(c, s.command, images)
	}
	noAPI := p.apiUnavailable()
	switch p.wantedLogSource(c.Name) {
	case annotations.LogSourceAPI:
		if noAPI == "" {
			return LogSourceAPI, argv{}, ""
		}
		if why == "" {
			return LogSourceWrap, a, fmt.Sprintf("annotation %s asks for log source api for container %s, but %s; it is wrapped instead",
				annotations.LogSource, c.Name, noAPI)
		}
		return LogSourceNone, argv{}, fmt.Sprintf("%s; annotation %s asks for log source api, but %s", why, annotations.LogSource, noAPI)
	case annotations.LogSourceWrap:
		if why == "" {
			return LogSourceWrap, a, ""
		}
		return LogSourceNone, argv{}, fmt.Sprintf("%s (annotation %s forces wrap)", why, annotations.LogSource)
	}
	switch {
	case why == "":
		return LogSourceWrap, a, ""
	case noAPI == "":
		// Still a warning: a person who applies the pod learns that
		// stdout and stderr arrive merged, and how to have them apart.
		return LogSourceAPI, argv{}, strings.Replace(why, " is not captured: ", " is not wrapped: ", 1) +
			"; meanwhile its logs are read from the kubelet (log source api: stdout and stderr merged, as stdout)"
	default:
		return LogSourceNone, argv{}, fmt.Sprintf("%s (%s)", why, noAPI)
	}
}

// mayFollow says whether some captured container of pod could get the api
// log source, for NeedsNodeProxyCA before any look-up: forced api, or no
// known command, or a mount that keeps the wrapper out.
func (p *plan) mayFollow(pod *corev1.Pod) bool {
	if !p.signals.Logs || p.apiUnavailable() != "" {
		return false
	}
	for _, s := range p.selected {
		c, _ := findContainer(pod, s.name)
		switch p.wantedLogSource(s.name) {
		case annotations.LogSourceAPI:
			return true
		case annotations.LogSourceWrap:
			continue
		}
		if mountClash(c) != "" || (len(c.Command) == 0 && s.command == nil) {
			return true
		}
	}
	return false
}

// nodeProxyHost is the node proxy Service's address, host[:port].
func nodeProxyHost(np NodeProxySettings) string {
	host := fmt.Sprintf("%s.%s.svc", np.Service, np.Namespace)
	if np.Port != 443 {
		host = fmt.Sprintf("%s:%d", host, np.Port)
	}
	return host
}

// nodeProxyTokenVolume holds a token only the node proxy accepts and the
// proxy's CA, mounted into the collector and the follower only: the app
// never sees it. The CA ConfigMap is optional so that a namespace where
// it is not published yet still starts its pods.
func nodeProxyTokenVolume(np NodeProxySettings) corev1.Volume {
	return corev1.Volume{Name: ProxyTokenVolume, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: np.Audience, ExpirationSeconds: ptr(int64(tokenExpirationSeconds)), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: np.CAConfigMap},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				Optional:             ptr(true),
			}},
		}},
	}}
}

// addFollower puts the follower of the followed containers into the pod
// (the token volume too, when kubelet stats have not added it), and
// returns it, to be placed right after the collector.
func (p *plan) addFollower(pod *corev1.Pod, followed []string, flags teeFlags) corev1.Container {
	np := p.cfg.KubeletStats.NodeProxy
	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == ProxyTokenVolume }) {
		pod.Spec.Volumes = append(pod.Spec.Volumes, nodeProxyTokenVolume(np))
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	// The flags the follower shares with the wrapper (see
	// cmd/fargate-otel-tee/follow); the pod's identity from the Downward
	// API, in the variables the follower reads (tee/follow, tee).
	return corev1.Container{
		Name:            FollowerContainerName,
		Image:           p.cfg.Images.Tee,
		ImagePullPolicy: p.cfg.Images.PullPolicy,
		Command: []string{
			TeeImageBinary, "follow",
			"--node-proxy=https://" + nodeProxyHost(np),
			"--containers=" + strings.Join(followed, ","),
			"--dir=" + CollectorLogDir,
			"--max-size=" + flags.maxSize,
			fmt.Sprintf("--max-backups=%d", flags.maxBackups),
			"--budget=" + flags.budget,
			"--drain-timeout=" + p.followerDrain().String(),
		},
		Env: []corev1.EnvVar{
			fieldEnv("FARGATE_OTEL_NODE", "spec.nodeName"),
			fieldEnv("FARGATE_OTEL_NAMESPACE", "metadata.namespace"),
			fieldEnv("FARGATE_OTEL_POD", "metadata.name"),
			fieldEnv("FARGATE_OTEL_POD_UID", "metadata.uid"),
		},
		Resources:     *p.cfg.Follower.Resources.DeepCopy(),
		RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		VolumeMounts: []corev1.VolumeMount{
			{Name: LogsVolumeName, MountPath: CollectorLogDir},
			{Name: ProxyTokenVolume, MountPath: ServiceAccountMount, ReadOnly: true},
		},
		SecurityContext:          securityContext(p.cfg.RunAsUser),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// followerDrain is the follower's --drain-timeout: a sixth of the grace
// period, between 1 s and followerDrainMax, so that the collector, which
// gets SIGTERM once the follower has exited, keeps most of it.
func (p *plan) followerDrain() time.Duration {
	d := time.Duration(p.grace) * time.Second / 6
	return min(max(d.Truncate(time.Second), time.Second), followerDrainMax)
}
