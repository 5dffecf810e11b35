package injector

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/internal/version"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Config is everything the injector needs besides the pod: the server's
// settings (from its config file, which the Helm chart writes) and, per
// request, the exporters ConfigMap a pod refers to. Start from DefaultConfig
// or LoadConfig; the YAML field names below are the config file's.
type Config struct {
	Images ImageSettings `json:"images"`
	// ClusterName becomes the k8s.cluster.name resource attribute.
	ClusterName string `json:"clusterName"`
	// Scope says which pods are injected: "fargate" (default: pods with the
	// eks.amazonaws.com/fargate-profile label or schedulerName
	// fargate-scheduler) or "all".
	Scope Scope `json:"scope"`
	// NativeSidecars says the API server runs init containers with
	// restartPolicy Always as sidecars (Kubernetes >= 1.29). Without them the
	// collector is a regular container, and pods that run to completion
	// (restartPolicy Never or OnFailure) are not injected, because a
	// collector that never exits would keep them running forever.
	NativeSidecars bool `json:"nativeSidecars"`
	// SleepAction says the API server accepts the preStop sleep action
	// (Kubernetes >= 1.30, feature PodLifecycleSleepAction on by default).
	// Without it the collector gets no preStop hook: an API server that
	// does not know the action would reject the pod.
	SleepAction bool `json:"sleepAction"`
	// Signals are the pipelines enabled by default; pods can turn each off
	// (or back on) with an annotation.
	Signals SignalSettings `json:"signals"`
	// Exporters receive every pod's telemetry unless the pod names its own
	// in a ConfigMap. Empty means the collector config's defaults.
	Exporters []ExporterSpec `json:"exporters,omitempty"`
	// KubeletStats says how the collector reads /stats/summary.
	KubeletStats KubeletStatsSettings `json:"kubeletStats"`
	// Logs sizes the logs volume and the wrapper's rotation.
	Logs LogSettings `json:"logs"`
	// Collector sizes the collector sidecar.
	Collector CollectorSettings `json:"collector"`
	// Fleet connects the sidecars' agents to the fleet server (fleet.go).
	Fleet FleetSettings `json:"fleet,omitempty"`
	// InitResources are the resources of the fargate-otel-init container.
	InitResources corev1.ResourceRequirements `json:"initResources"`
	// Follower configures the api log source (see logsource.go).
	Follower FollowerSettings `json:"follower"`
	// FargateSizing is "fit" (default: the collector's requests are lowered
	// to fit into the headroom Fargate's rounding already pays for, down to
	// Collector.MinRequests) or "fixed" (Collector.Resources as they are).
	FargateSizing string `json:"fargateSizing"`
	// RunAsUser is the uid and gid of every injected container.
	RunAsUser int64 `json:"runAsUser"`

	// ReferencedExporters is the content of the ConfigMap named by the pod's
	// fargate-otel.io/exporters annotation, read by the caller before Mutate
	// (see ExportersConfigMap). It is per request and never in the file.
	ReferencedExporters *ReferencedExporters `json:"-"`
	// Namespace is what the caller read about the pod's namespace before
	// Mutate. It is per request and never in the file; its zero value means
	// "unknown" (the CLI), and the configuration alone decides.
	Namespace NamespaceFacts `json:"-"`
}

// NamespaceFacts are what the webhook reads about the pod's namespace for
// Mutate, which does no I/O.
type NamespaceFacts struct {
	// Labels are the namespace's labels; nil when unknown. The label
	// fargate-otel.io/kubelet-stats chooses the namespace's kubelet stats
	// mode among KubeletStats.AllowedModes.
	Labels map[string]string
	// LimitRanges are the namespace's LimitRanges: the injected containers'
	// requests and limits are fitted into them, because the API server's
	// LimitRanger gives them no defaults (it runs before the webhooks) but
	// validates them (after).
	LimitRanges []corev1.LimitRange
	// NodeProxyCA says whether the ConfigMap KubeletStats.NodeProxy.CAConfigMap
	// is in the namespace; without it, the collector of a pod in mode proxy
	// cannot start, so the pod gets no kubelet stats.
	NodeProxyCA Presence
	// NodeProxyCAError says why the caller could not publish a Missing CA
	// ConfigMap (the webhook tries before Mutate: see NeedsNodeProxyCA); the
	// warning of a pod whose kubelet stats are off because of it says so.
	NodeProxyCAError string
}

// Presence of an object the caller looked for.
type Presence string

const (
	// PresenceUnknown: not looked up (the CLI) or the look-up failed.
	PresenceUnknown Presence = ""
	Present         Presence = "present"
	Missing         Presence = "missing"
)

// ImageSettings are the images of the injected containers.
type ImageSettings struct {
	// Tee is the image holding fargate-otel-tee (the init container's).
	Tee string `json:"tee"`
	// Collector is the fargate-otel-collector image.
	Collector  string            `json:"collector"`
	PullPolicy corev1.PullPolicy `json:"pullPolicy,omitempty"`
}

// Scope values.
type Scope string

const (
	ScopeFargate Scope = "fargate"
	ScopeAll     Scope = "all"
)

// SignalSettings turns pipelines on or off.
type SignalSettings struct {
	Logs    bool `json:"logs"`
	Metrics bool `json:"metrics"`
	Traces  bool `json:"traces"`
}

// ExporterSpec is one collector exporter as written in the config file, in
// the Helm values and in a pod's exporters ConfigMap.
type ExporterSpec struct {
	// ID is the collector component ID, e.g. "otlp_grpc/gateway".
	ID string `json:"id"`
	// Config is the exporter's settings, as in a collector config.
	Config map[string]any `json:"config,omitempty"`
	// Signals restricts the exporter to some of logs, metrics, traces.
	Signals []string `json:"signals,omitempty"`
}

// KubeletStats modes.
type KubeletStatsMode string

const (
	// KubeletStatsProxy reads the stats through fargate-otel-nodeproxy with a
	// token of the proxy's own audience, mounted only into the collector.
	KubeletStatsProxy KubeletStatsMode = "proxy"
	// KubeletStatsDirect reads them through the API server's nodes/proxy with
	// the pod's service account (which then needs get nodes/proxy).
	KubeletStatsDirect KubeletStatsMode = "direct"
	// KubeletStatsOff renders no kubelet_stats receiver.
	KubeletStatsOff KubeletStatsMode = "off"
)

// KubeletStatsSettings configure the kubelet_stats receiver.
type KubeletStatsSettings struct {
	// Mode is the default mode; it is always allowed.
	Mode KubeletStatsMode `json:"mode"`
	// AllowedModes are the modes a namespace may choose with the label
	// fargate-otel.io/kubelet-stats (default proxy and off). Add direct
	// only knowingly: it gives the service accounts of the namespace's
	// injected pods get on nodes/proxy, in effect exec into any pod.
	AllowedModes []KubeletStatsMode `json:"allowedModes"`
	Interval     metav1.Duration    `json:"interval"`
	// NodeProxy is where mode proxy finds fargate-otel-nodeproxy.
	NodeProxy NodeProxySettings `json:"nodeProxy"`
}

// NodeProxySettings locate the nodeproxy Service and the token it accepts.
type NodeProxySettings struct {
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	Port      int32  `json:"port"`
	// Audience of the projected token the collector presents.
	Audience string `json:"audience"`
	// CAConfigMap is the ConfigMap (published in opted-in namespaces) whose
	// key ca.crt verifies the proxy's serving certificate.
	CAConfigMap string `json:"caConfigMap"`
}

// LogSettings size the logs volume and the wrapper's rotation.
type LogSettings struct {
	// VolumeSizeLimit is the sizeLimit of the fargate-otel-logs emptyDir; the
	// kubelet evicts a pod whose emptyDir grows past it, so the wrappers'
	// budgets are computed to stay well below it.
	VolumeSizeLimit resource.Quantity `json:"volumeSizeLimit"`
	// MaxSize is the size at which a container's file is rotated.
	MaxSize resource.Quantity `json:"maxSize"`
	// MaxBackups is how many rotated files are kept per container.
	MaxBackups int `json:"maxBackups"`
	// Format is the wrapper's file format, "cri" or "raw".
	Format string `json:"format"`
}

// CollectorSettings size the collector sidecar.
type CollectorSettings struct {
	// Resources are the collector's requests and limits. GOMEMLIMIT is
	// derived from the memory limit.
	Resources corev1.ResourceRequirements `json:"resources"`
	// MinRequests are the floors below which Fargate fitting never lowers
	// the requests (memory: what the collector needs to live).
	MinRequests corev1.ResourceList `json:"minRequests"`
	// HealthCheckPort is the health_check extension's port, probed by the
	// kubelet.
	HealthCheckPort int32 `json:"healthCheckPort"`
	// ShutdownDelay is the preStop sleep of a collector that runs as a
	// regular container (no native sidecars): it gets SIGTERM together with
	// the app, and the sleep keeps it reading while the app shuts down. A
	// native sidecar gets SIGTERM only after the app has exited and needs
	// none: its drain (within the grace period) reads the last lines and
	// empties its queues. Capped by the pod's terminationGracePeriodSeconds;
	// 0 adds no hook.
	ShutdownDelay metav1.Duration `json:"shutdownDelay"`
}

// ReferencedExporters carries the exporters ConfigMap of one pod.
type ReferencedExporters struct {
	// Ref is what was read (it must match the pod's annotation).
	Ref annotations.ConfigMapRef
	// Data is the value of the key: a YAML list of ExporterSpec.
	Data string
	// Err says why it could not be read (not found, no such key, forbidden).
	Err error
}

// DefaultConfig returns the settings used when the config file says nothing.
func DefaultConfig() Config {
	return Config{
		// The images of this release (internal/version), as the chart's.
		Images: ImageSettings{
			Tee:        version.Image("fargate-otel-tee"),
			Collector:  version.Image("fargate-otel-collector"),
			PullPolicy: corev1.PullIfNotPresent,
		},
		Scope:          ScopeFargate,
		NativeSidecars: true,
		SleepAction:    true,
		Signals:        SignalSettings{Logs: true, Metrics: true, Traces: true},
		KubeletStats: KubeletStatsSettings{
			Mode:         KubeletStatsProxy,
			AllowedModes: []KubeletStatsMode{KubeletStatsProxy, KubeletStatsOff},
			Interval:     metav1.Duration{Duration: 30 * time.Second},
			NodeProxy: NodeProxySettings{
				Service:     "fargate-otel-nodeproxy",
				Namespace:   "fargate-otel",
				Port:        443,
				Audience:    "fargate-otel-nodeproxy",
				CAConfigMap: "fargate-otel-nodeproxy-ca",
			},
		},
		Logs: LogSettings{
			VolumeSizeLimit: resource.MustParse("256Mi"),
			MaxSize:         resource.MustParse("10Mi"),
			MaxBackups:      5,
			Format:          "cri",
		},
		Collector: CollectorSettings{
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("100m"),
					corev1.ResourceMemory: resource.MustParse("128Mi"),
				},
				// Limits on both, so that a ResourceQuota on limits admits
				// the pod; a whole CPU is generous for one pod's collector.
				Limits: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("1"),
					corev1.ResourceMemory: resource.MustParse("256Mi"),
				},
			},
			MinRequests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("0"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
			HealthCheckPort: 13133,
			ShutdownDelay:   metav1.Duration{Duration: 5 * time.Second},
		},
		InitResources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("16Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		},
		Follower:      defaultFollowerSettings(),
		FargateSizing: "fit",
		RunAsUser:     65532,
	}
}

// LoadConfig reads a config file (YAML) over the defaults.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read injector config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("injector config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig reads YAML over the defaults: fields the YAML leaves out keep
// their default. Unknown fields are errors, so that a typo is not silently
// ignored.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("parse (fields are those of injector.Config, e.g. images.tee, clusterName, kubeletStats.mode): %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports settings the injector cannot work with.
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Images.Tee == "" {
		bad("images.tee is empty: give the fargate-otel-tee image")
	}
	if c.Images.Collector == "" {
		bad("images.collector is empty: give the fargate-otel-collector image")
	}
	switch c.Images.PullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("images.pullPolicy %q is not Always, IfNotPresent or Never", c.Images.PullPolicy)
	}
	if c.Scope != ScopeFargate && c.Scope != ScopeAll {
		bad("scope %q is neither %q nor %q", c.Scope, ScopeFargate, ScopeAll)
	}
	if !c.KubeletStats.Mode.valid() {
		bad("kubeletStats.mode %q is not proxy, direct or off", c.KubeletStats.Mode)
	}
	for _, m := range c.KubeletStats.AllowedModes {
		if !m.valid() {
			bad("kubeletStats.allowedModes: %q is not proxy, direct or off", m)
		}
	}
	if c.KubeletStats.Allows(KubeletStatsProxy) {
		np := c.KubeletStats.NodeProxy
		if np.Service == "" || np.Namespace == "" || np.Audience == "" || np.CAConfigMap == "" || np.Port <= 0 || np.Port > 65535 {
			bad("kubeletStats.nodeProxy needs service, namespace, port (1-65535), audience and caConfigMap when mode proxy is allowed")
		}
	}
	if c.KubeletStats.Interval.Duration < time.Second {
		bad("kubeletStats.interval %s is below 1s", c.KubeletStats.Interval.Duration)
	}
	if c.Logs.VolumeSizeLimit.Cmp(resource.MustParse("16Mi")) < 0 {
		bad("logs.volumeSizeLimit %s is below 16Mi", c.Logs.VolumeSizeLimit.String())
	}
	if c.Logs.MaxSize.Cmp(resource.MustParse("1Mi")) < 0 {
		bad("logs.maxSize %s is below 1Mi", c.Logs.MaxSize.String())
	}
	if c.Logs.MaxBackups < 0 {
		bad("logs.maxBackups %d is negative", c.Logs.MaxBackups)
	}
	if c.Logs.Format != "cri" && c.Logs.Format != "raw" {
		bad("logs.format %q is neither cri nor raw", c.Logs.Format)
	}
	if lim, ok := c.Collector.Resources.Limits[corev1.ResourceMemory]; !ok {
		bad("collector.resources.limits.memory is required (GOMEMLIMIT and memory_limiter are sized from it)")
	} else if lim.Value() < sidecarconfig.MinMemoryLimitMiB<<20 {
		bad("collector.resources.limits.memory %s is below the %dMi the collector needs", lim.String(), sidecarconfig.MinMemoryLimitMiB)
	}
	for name, req := range c.Collector.Resources.Requests {
		if lim, ok := c.Collector.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			bad("collector.resources: the %s request %s is above its limit %s", name, req.String(), lim.String())
		}
	}
	if c.Collector.HealthCheckPort <= 0 || c.Collector.HealthCheckPort > 65535 {
		bad("collector.healthCheckPort %d is not a port", c.Collector.HealthCheckPort)
	}
	if d := c.Collector.ShutdownDelay.Duration; d < 0 || d > 10*time.Minute {
		bad("collector.shutdownDelay %s is not between 0 and 10m", d)
	}
	if c.FargateSizing != "fit" && c.FargateSizing != "fixed" {
		bad("fargateSizing %q is neither fit nor fixed", c.FargateSizing)
	}
	if c.RunAsUser <= 0 {
		bad("runAsUser %d must be a non-root uid", c.RunAsUser)
	}
	if err := c.Fleet.validate(); err != nil {
		bad("%v", err)
	}
	errs = append(errs, c.Follower.validate()...)
	for i, e := range c.Exporters {
		if err := e.validate(); err != nil {
			bad("exporters[%d]: %v", i, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid injector config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// UnmarshalJSON reads a mode; YAML 1.1 reads an unquoted off as false,
// which means off here.
func (m *KubeletStatsMode) UnmarshalJSON(b []byte) error {
	if string(b) == "false" {
		*m = KubeletStatsOff
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("kubelet stats mode %s: want proxy, direct or off", b)
	}
	*m = KubeletStatsMode(s)
	return nil
}

func (m KubeletStatsMode) valid() bool {
	return m == KubeletStatsProxy || m == KubeletStatsDirect || m == KubeletStatsOff
}

// Allows says whether a namespace may use mode m: the default mode and the
// allowed modes.
func (k KubeletStatsSettings) Allows(m KubeletStatsMode) bool {
	return m == k.Mode || slices.Contains(k.AllowedModes, m)
}

// Modes are the modes in use: the default first, then the other allowed
// ones, each once. The controllers that serve a mode run when it is here.
func (k KubeletStatsSettings) Modes() []KubeletStatsMode {
	out := []KubeletStatsMode{k.Mode}
	for _, m := range k.AllowedModes {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func (e ExporterSpec) validate() error {
	if e.ID == "" {
		return fmt.Errorf("id is empty: give a component ID such as otlp_grpc/gateway")
	}
	for _, s := range e.Signals {
		if s != "logs" && s != "metrics" && s != "traces" {
			return fmt.Errorf("exporter %s: signal %q is not logs, metrics or traces", e.ID, s)
		}
	}
	return nil
}
