package injector

import (
	"fmt"
	"math"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// The collector sidecar, its config and the credentials of its kubelet stats.

// tokenExpirationSeconds is the lifetime of the projected tokens we add;
// the kubelet refreshes them at 80%.
const tokenExpirationSeconds = 3600

// collectorContainer builds the sidecar, without its config (set by
// setCollectorConfig once its resources are final).
func collectorContainer(cfg Config, resources corev1.ResourceRequirements, logs bool, native bool) corev1.Container {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	c := corev1.Container{
		Name:            CollectorContainerName,
		Image:           cfg.Images.Collector,
		ImagePullPolicy: cfg.Images.PullPolicy,
		Args:            []string{"--config=" + sidecarconfig.SettingsConfigURI},
		Env: []corev1.EnvVar{
			fieldEnv("NODE_NAME", "spec.nodeName"),
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("POD_UID", "metadata.uid"),
			fieldEnv("POD_IP", "status.podIP"),
			// A collector that cannot run stays up (the app is never held
			// back) and answers the liveness probe meanwhile.
			{Name: sidecarconfig.SidecarEnvVar, Value: "true"},
			{Name: sidecarconfig.HealthEndpointEnvVar, Value: fmt.Sprintf(":%d", cfg.Collector.HealthCheckPort)},
		},
		Resources: resources,
		// The app is never gated on the collector. A native sidecar's
		// startup probe holds back every container after it, the app's
		// included, and its readiness probe is part of the pod's Ready
		// condition (a sick collector would take the app out of its
		// Services). Nothing is lost without them: OTLP SDKs retry, and
		// logs wait in files the collector reads from the beginning. A
		// liveness probe restarts a collector that hangs, slowly enough
		// that a busy one is left alone.
		LivenessProbe:            livenessProbe(cfg.Collector.HealthCheckPort),
		SecurityContext:          securityContext(cfg.RunAsUser),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if native {
		c.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
	}
	// The state folder (file_log offsets, the exporters' on-disk queue) is
	// needed whatever the signals: the root filesystem is read-only.
	if logs {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: LogsVolumeName, MountPath: CollectorLogDir, ReadOnly: true})
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: LogsVolumeName, MountPath: CollectorStateDir, SubPath: StateSubPath})
	return c
}

// livenessProbe restarts a collector whose health_check has not answered
// for a minute, and none in its first half minute (a start that compacts
// a large file_storage database). health_check answers as long as the
// collector runs, whatever its exporters do: a gateway outage never
// restarts it.
func livenessProbe(port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/", Port: intstr.FromInt32(port),
		}},
		InitialDelaySeconds: 30,
		PeriodSeconds:       10,
		TimeoutSeconds:      5,
		FailureThreshold:    6,
		SuccessThreshold:    1,
	}
}

// The end of a pod. A collector that stops at once would lose the app's
// last lines (file_log polls every 200 ms) and its exporters' queues on
// disk (not drained on shutdown at v0.159.0). The collector's drain
// extension holds its shutdown until both are done, within a timeout below
// the grace period. A native sidecar gets SIGTERM only once the app
// containers have exited, so the drain is enough; a collector that is a
// regular container gets SIGTERM with the app, and a preStop sleep keeps it
// reading while the app shuts down.

// drainMargin is the part of the grace period left for the rest of the
// collector's shutdown after the drain; minDrain the least drain timeout.
const (
	drainMargin = 5 * time.Second
	minDrain    = time.Second
	// shutdownMargin is what the hard stop leaves before the kubelet's
	// SIGKILL; shutdownAfterDrain bounds the rest of the shutdown after
	// the drain (a hang is not waited out for a long grace period).
	shutdownMargin     = 2 * time.Second
	shutdownAfterDrain = 10 * time.Second
)

// preStopSeconds is the collector's preStop sleep: the shutdown delay for a
// collector that is a regular container, within the grace period (the API
// server refuses a longer one, and one of 0 seconds unless a newer feature
// allows it); none for a native sidecar or where the API server lacks the
// sleep action.
func (p *plan) preStopSeconds() int64 {
	if p.cfg.NativeSidecars || !p.cfg.SleepAction {
		return 0
	}
	seconds := int64(math.Ceil(p.cfg.Collector.ShutdownDelay.Seconds()))
	return max(min(seconds, p.grace), 0)
}

// drainTimeout is what the grace period leaves the drain after the preStop
// sleep and the rest of the shutdown, at most the collector's default.
func (p *plan) drainTimeout() time.Duration {
	left := time.Duration(p.grace-p.preStopSeconds())*time.Second - drainMargin
	return max(min(sidecarconfig.DefaultDrainTimeout, left), minDrain)
}

// shutdownTimeout is the collector's hard stop: what the grace period
// leaves after the preStop sleep, less a margin, never shorter than the
// drain and never much longer.
func (p *plan) shutdownTimeout() time.Duration {
	left := time.Duration(p.grace-p.preStopSeconds())*time.Second - shutdownMargin
	drain := p.drainTimeout()
	return max(min(left, drain+shutdownAfterDrain), drain+time.Second)
}

func preStopSleep(seconds int64) *corev1.Lifecycle {
	if seconds <= 0 {
		return nil
	}
	return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: seconds}}}
}

// goMemLimit is 80% of the memory limit, in the form GOMEMLIMIT reads.
func goMemLimit(limit resource.Quantity) string {
	return fmt.Sprintf("%dMiB", limit.Value()/5*4>>20)
}

// kubeletStatsAccess adds what the collector needs to authenticate to the
// stats endpoint, and returns the receiver settings.
func kubeletStatsAccess(pod *corev1.Pod, cfg Config, collector *corev1.Container) sidecarconfig.KubeletStats {
	ks := sidecarconfig.KubeletStats{Interval: cfg.KubeletStats.Interval.Duration}
	switch cfg.KubeletStats.Mode {
	case KubeletStatsOff:
		ks.Disabled = true
	case KubeletStatsProxy:
		np := cfg.KubeletStats.NodeProxy
		ks.Endpoint = "https://" + nodeProxyHost(np) + "/api/v1/nodes/${env:NODE_NAME}/proxy"
		ks.CAFile = ServiceAccountMount + "/ca.crt"
		// A token only the proxy accepts, mounted (besides the follower)
		// only into the collector at the path the kubelet_stats receiver
		// reads: the app never sees it. Without the CA yet, the collector
		// reports it.
		pod.Spec.Volumes = append(pod.Spec.Volumes, nodeProxyTokenVolume(np))
		collector.VolumeMounts = append(collector.VolumeMounts, corev1.VolumeMount{Name: ProxyTokenVolume, MountPath: ServiceAccountMount, ReadOnly: true})
	case KubeletStatsDirect:
		ks.Endpoint = "https://kubernetes.default.svc/api/v1/nodes/${env:NODE_NAME}/proxy"
		// The pod's own service-account token: reuse the volume the
		// ServiceAccount admission plugin mounted into the app (it ran
		// before the webhooks and did not see our container). Without one
		// (automounting off, or YAML not yet admitted), add a projected
		// token of the API server's audience, like the plugin's.
		if name := serviceAccountVolume(pod); name != "" {
			collector.VolumeMounts = append(collector.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: ServiceAccountMount, ReadOnly: true})
			break
		}
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: APITokenVolumeName, VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr(int64(tokenExpirationSeconds)), Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}},
				}}},
			}},
		}})
		collector.VolumeMounts = append(collector.VolumeMounts, corev1.VolumeMount{Name: APITokenVolumeName, MountPath: ServiceAccountMount, ReadOnly: true})
	}
	return ks
}

// serviceAccountVolume is the volume some container mounts at the service
// account path, if any.
func serviceAccountVolume(pod *corev1.Pod) string {
	name := ""
	visit(pod, func(c *corev1.Container, _ bool) {
		for _, m := range c.VolumeMounts {
			if name == "" && m.MountPath == ServiceAccountMount && m.SubPath == "" && m.SubPathExpr == "" {
				name = m.Name
			}
		}
	})
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return name
		}
	}
	return ""
}

// exporters picks the pod's exporters: its ConfigMap's, else the cluster's.
func (p *plan) exporters() []ExporterSpec {
	ref := p.opts.Exporters
	if ref == nil {
		return p.cfg.Exporters
	}
	where := fmt.Sprintf("ConfigMap %s key %s", ref.Name, ref.Key)
	rx := p.cfg.ReferencedExporters
	switch {
	case rx == nil || rx.Ref != *ref:
		p.warnf("the exporters of annotation %s (%s) were not read; the cluster's default exporters are used", annotations.Exporters, where)
		return p.cfg.Exporters
	case rx.Err != nil:
		p.warnf("the exporters of annotation %s could not be read (%v); the cluster's default exporters are used", annotations.Exporters, rx.Err)
		return p.cfg.Exporters
	}
	specs, err := ParseExporters([]byte(rx.Data))
	if err != nil {
		p.warnf("%s: %v; the cluster's default exporters are used", where, err)
		return p.cfg.Exporters
	}
	return specs
}

// ParseExporters reads a YAML list of exporters, the format of the
// exporters ConfigMap and of the config file's exporters.
func ParseExporters(data []byte) ([]ExporterSpec, error) {
	var specs []ExporterSpec
	if err := yaml.UnmarshalStrict(data, &specs); err != nil {
		return nil, fmt.Errorf("not a YAML list of exporters (- id: otlp_grpc/NAME, config: {...}, signals: [...]): %w", err)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("the list of exporters is empty")
	}
	for i, s := range specs {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("exporter %d: %w", i, err)
		}
	}
	return specs, nil
}

// ExportersConfigMap says which ConfigMap (in the pod's namespace) the
// caller must read into Config.ReferencedExporters before Mutate.
func ExportersConfigMap(pod *corev1.Pod) (annotations.ConfigMapRef, bool) {
	if pod == nil {
		return annotations.ConfigMapRef{}, false
	}
	opts, _ := annotations.Parse(pod.Annotations)
	if opts.Exporters == nil {
		return annotations.ConfigMapRef{}, false
	}
	return *opts.Exporters, true
}

// collectorConfig is the typed config of the pod's collector.
func (p *plan) collectorConfig(ks sidecarconfig.KubeletStats, memLimit resource.Quantity) sidecarconfig.Config {
	cc := sidecarconfig.Default()
	cc.ClusterName = p.cfg.ClusterName
	cc.Signals = nil
	if p.signals.Logs {
		cc.Signals = append(cc.Signals, sidecarconfig.Logs)
	}
	if p.signals.Metrics {
		cc.Signals = append(cc.Signals, sidecarconfig.Metrics)
	}
	if p.signals.Traces {
		cc.Signals = append(cc.Signals, sidecarconfig.Traces)
	}
	if specs := p.exporters(); len(specs) > 0 {
		cc.Exporters = nil
		for _, s := range specs {
			e := sidecarconfig.Exporter{ID: s.ID, Config: s.Config}
			for _, sig := range s.Signals {
				e.Signals = append(e.Signals, sidecarconfig.Signal(sig))
			}
			cc.Exporters = append(cc.Exporters, e)
		}
	}
	cc.StorageDir = CollectorStateDir
	p.sizeDiskQueues(&cc)
	cc.KubeletStats = ks
	cc.HealthCheckEndpoint = fmt.Sprintf(":%d", p.cfg.Collector.HealthCheckPort)
	cc.DrainTimeout = p.drainTimeout()
	cc.LogParsing = p.logParsing()
	// Below the collector's minimum (pod-level limits can force that), let
	// memory_limiter use percentages of the cgroup limit instead.
	if mib := memLimit.Value() >> 20; mib >= sidecarconfig.MinMemoryLimitMiB {
		cc.MemoryLimitMiB = int(mib)
	}
	return cc
}

// sizeDiskQueues gives the exporters' queues on disk an eighth of the logs
// volume together (the wrappers have half of it; the rest is slack for the
// offsets, compaction and the moment before a rotation), and at least what
// they need to work, with a warning when that no longer fits.
func (p *plan) sizeDiskQueues(cc *sidecarconfig.Config) {
	volume := p.logsVolumeSize()
	volMiB := int(volume.Value() >> 20)
	cc.DiskQueueMiB = volMiB / 8
	if need := cc.MinDiskQueuesMiB(); cc.DiskQueueMiB < need {
		if need > volMiB/4 {
			p.warnf("the logs volume (%s) is small for the collector's queues on disk, which need %dMi: a long gateway outage may fill it and get the pod evicted; set the annotation %s to at least %dMi",
				volume.String(), need, annotations.LogsVolumeSize, need*4)
		}
		cc.DiskQueueMiB = need
	}
}

// CollectorConfig is the collector config Mutate would render for the pod
// (for `fargate-otel render`); the pod may be nil (defaults only).
func CollectorConfig(pod *corev1.Pod, cfg Config) (sidecarconfig.Config, []string, error) {
	if pod == nil {
		pod = &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	}
	cfg.Scope = ScopeAll
	p, skip, msg := newPlan(pod.DeepCopy(), cfg)
	if skip != "" {
		if msg == "" {
			msg = string(skip)
		}
		return sidecarconfig.Config{}, nil, fmt.Errorf("no collector for this pod: %s", strings.TrimPrefix(msg, "not injected: "))
	}
	var scratch corev1.Container
	ks := sidecarconfig.KubeletStats{Disabled: true}
	if p.signals.Metrics {
		ks = kubeletStatsAccess(pod.DeepCopy(), p.cfg, &scratch)
	}
	cc := p.collectorConfig(ks, cfg.Collector.Resources.Limits[corev1.ResourceMemory])
	return cc, p.warnings, nil
}

// CollectorConfigOf is the collector config an injected pod's sidecar runs
// at start: the YAML its settings (FARGATE_OTEL_SETTINGS) render.
func CollectorConfigOf(pod *corev1.Pod) ([]byte, error) {
	if pod == nil {
		return nil, fmt.Errorf("no pod")
	}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name != CollectorContainerName {
			continue
		}
		for _, e := range c.Env {
			if e.Name == sidecarconfig.SettingsEnvVar {
				cc, err := sidecarconfig.Decode([]byte(e.Value))
				if err != nil {
					return nil, fmt.Errorf("the %s of container %s: %w", e.Name, c.Name, err)
				}
				return sidecarconfig.Render(cc)
			}
		}
		return nil, fmt.Errorf("container %s has no %s env var", c.Name, sidecarconfig.SettingsEnvVar)
	}
	return nil, fmt.Errorf("the pod has no %s container: it was not injected", CollectorContainerName)
}
