package injector

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// TestKubeletStatsModePerNamespace: the namespace label chooses among the
// allowed modes; nothing on the pod can; mode proxy without the proxy's CA
// in the namespace turns kubelet stats off for the pod rather than leave it
// with a collector that cannot start.
func TestKubeletStatsModePerNamespace(t *testing.T) {
	allowDirect := func(c *Config) {
		c.KubeletStats.AllowedModes = []KubeletStatsMode{KubeletStatsProxy, KubeletStatsDirect, KubeletStatsOff}
	}
	nsLabel := func(v string) map[string]string {
		return map[string]string{annotations.Inject: annotations.Enabled, annotations.KubeletStats: v}
	}
	for _, tt := range []struct {
		name     string
		cfg      func(*Config)
		labels   map[string]string // the namespace's; nil: unknown
		ca       Presence
		caErr    string // why the webhook could not publish a missing CA
		pod      func(ann, labels map[string]string)
		want     KubeletStatsMode
		endpoint string // in the collector config; "" when kubelet stats are off
		warn     string
	}{
		{name: "unknown namespace: the default", want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy"},
		{name: "namespace without the label", labels: map[string]string{annotations.Inject: annotations.Enabled}, ca: Present, want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy"},
		{name: "namespace chooses off", labels: nsLabel("off"), want: KubeletStatsOff},
		{name: "namespace asks for direct, not allowed", labels: nsLabel("direct"), want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy",
			warn: "asks for a mode this injector does not allow (kubeletStats.allowedModes: proxy, off)"},
		{name: "namespace chooses direct, allowed", cfg: allowDirect, labels: nsLabel("direct"), want: KubeletStatsDirect, endpoint: "kubernetes.default.svc"},
		{name: "namespace chooses proxy, default direct", cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsDirect }, labels: nsLabel("proxy"), ca: Present,
			want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy"},
		{name: "the default mode is allowed without being listed", cfg: func(c *Config) {
			c.KubeletStats.Mode = KubeletStatsDirect
			c.KubeletStats.AllowedModes = nil
		}, labels: nsLabel("direct"), want: KubeletStatsDirect, endpoint: "kubernetes.default.svc"},
		{name: "a bad label value", labels: nsLabel("sometimes"), want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy",
			warn: `namespace label fargate-otel.io/kubelet-stats="sometimes" is not proxy, direct or off`},
		{name: "a pod annotation cannot choose direct", cfg: allowDirect, pod: func(ann, _ map[string]string) { ann[annotations.KubeletStats] = "direct" },
			want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy", warn: "annotation fargate-otel.io/kubelet-stats ignored"},
		{name: "a pod label cannot choose direct", cfg: allowDirect, pod: func(_, l map[string]string) { l[annotations.KubeletStats] = "direct" },
			want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy", warn: "pod label fargate-otel.io/kubelet-stats is ignored"},
		{name: "proxy without its CA in the namespace", ca: Missing, want: KubeletStatsOff,
			warn: "kubelet stats are off for this pod: the ConfigMap fargate-otel-nodeproxy-ca, which holds the node proxy's CA, is not in namespace ns yet"},
		{name: "proxy without its CA, which could not be published", ca: Missing, caErr: "create ConfigMap ns/fargate-otel-nodeproxy-ca: forbidden", want: KubeletStatsOff,
			warn: "is not in namespace ns, and the injector could not publish it: create ConfigMap ns/fargate-otel-nodeproxy-ca: forbidden. Fix that, then re-create the pod"},
		{name: "proxy with its CA", ca: Present, want: KubeletStatsProxy, endpoint: "fargate-otel-nodeproxy"},
		{name: "direct needs no proxy CA", cfg: allowDirect, labels: nsLabel("direct"), ca: Missing, want: KubeletStatsDirect, endpoint: "kubernetes.default.svc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := fargatePod("", "", map[string]string{})
			if tt.pod != nil {
				tt.pod(pod.Annotations, pod.Labels)
			}
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			cfg.Namespace = NamespaceFacts{Labels: tt.labels, NodeProxyCA: tt.ca, NodeProxyCAError: tt.caErr}
			res := mutateChecked(t, pod, cfg, nil)
			// The webhook publishes a missing CA exactly when the pod would
			// be in mode proxy with it.
			withCA := cfg
			withCA.Namespace.NodeProxyCA = Present
			if needs, proxy := NeedsNodeProxyCA(pod, cfg), mutateChecked(t, pod, withCA, nil).Status.KubeletStats == string(KubeletStatsProxy); needs != proxy {
				t.Errorf("NeedsNodeProxyCA = %v, but with the CA the mode is proxy: %v", needs, proxy)
			}
			if !res.Injected {
				t.Fatalf("not injected: %v", res.Warnings)
			}
			if KubeletStatsMode(res.Status.KubeletStats) != tt.want {
				t.Errorf("mode %s, want %s", res.Status.KubeletStats, tt.want)
			}
			var st Status
			if err := json.Unmarshal([]byte(res.Pod.Annotations[annotations.Status]), &st); err != nil || KubeletStatsMode(st.KubeletStats) != tt.want {
				t.Errorf("status annotation %q, want kubeletStats %s", res.Pod.Annotations[annotations.Status], tt.want)
			}
			conf := collectorYAML(t, res.Pod)
			switch {
			case tt.endpoint == "" && strings.Contains(conf, "kubelet_stats"):
				t.Errorf("kubelet stats are off, yet the collector config has kubelet_stats")
			case tt.endpoint != "" && !strings.Contains(conf, "endpoint: https://"+tt.endpoint):
				t.Errorf("the collector's kubelet_stats endpoint is not %s...:\n%s", tt.endpoint, conf)
			}
			hasProxyToken := slices.ContainsFunc(res.Pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == ProxyTokenVolume })
			if hasProxyToken != (tt.want == KubeletStatsProxy) {
				t.Errorf("proxy token volume present %v in mode %s", hasProxyToken, tt.want)
			}
			all := strings.Join(res.Warnings, "\n")
			if tt.warn == "" && strings.Contains(all, "kubelet") {
				t.Errorf("unexpected warning: %s", all)
			}
			if tt.warn != "" && !strings.Contains(all, tt.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tt.warn)
			}
		})
	}
}

func TestKubeletStatsModesConfig(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.KubeletStats.Modes(); !slices.Equal(got, []KubeletStatsMode{KubeletStatsProxy, KubeletStatsOff}) {
		t.Errorf("default modes %v: direct must be added explicitly", got)
	}
	cfg.KubeletStats.Mode = KubeletStatsDirect
	if got := cfg.KubeletStats.Modes(); !slices.Equal(got, []KubeletStatsMode{KubeletStatsDirect, KubeletStatsProxy, KubeletStatsOff}) {
		t.Errorf("modes %v", got)
	}
	cfg, err := ParseConfig([]byte("kubeletStats:\n  allowedModes: [proxy, direct]\n"))
	if err != nil || !cfg.KubeletStats.Allows(KubeletStatsDirect) || cfg.KubeletStats.Allows(KubeletStatsOff) {
		t.Errorf("allowedModes from the file: %v %+v", err, cfg.KubeletStats)
	}
	// Unquoted off is false in YAML 1.1.
	cfg, err = ParseConfig([]byte("kubeletStats:\n  mode: off\n  allowedModes: [proxy, off]\n"))
	if err != nil || cfg.KubeletStats.Mode != KubeletStatsOff || !slices.Equal(cfg.KubeletStats.AllowedModes, []KubeletStatsMode{KubeletStatsProxy, KubeletStatsOff}) {
		t.Errorf("unquoted off: %v %+v", err, cfg.KubeletStats)
	}
	if _, err := ParseConfig([]byte("kubeletStats:\n  allowedModes: [proxy, exec]\n")); err == nil || !strings.Contains(err.Error(), `allowedModes: "exec" is not proxy, direct or off`) {
		t.Errorf("a bad allowed mode: %v", err)
	}
}

// TestNeedsNodeProxyCA: no CA is published for a pod that would not use it.
func TestNeedsNodeProxyCA(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pod   func(*corev1.Pod)
		cfg   func(*Config)
		needs bool
	}{
		{name: "mode proxy, CA missing", needs: true},
		{name: "metrics off", pod: func(p *corev1.Pod) { p.Annotations[annotations.Metrics] = annotations.Disabled }},
		{name: "pod opted out", pod: func(p *corev1.Pod) { p.Labels[annotations.Inject] = annotations.Disabled }},
		{name: "not on Fargate", pod: func(p *corev1.Pod) { delete(p.Labels, FargateProfileLabel) }},
		{name: "namespace in mode off", cfg: func(c *Config) {
			c.Namespace.Labels = map[string]string{annotations.KubeletStats: "off"}
		}},
		{name: "default mode direct", cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsDirect }},
		{name: "already injected", pod: func(p *corev1.Pod) { p.Annotations[annotations.Status] = "{}" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := fargatePod("", "", map[string]string{})
			if tt.pod != nil {
				tt.pod(pod)
			}
			cfg := DefaultConfig()
			cfg.Namespace.NodeProxyCA = Missing
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			if got := NeedsNodeProxyCA(pod, cfg); got != tt.needs {
				t.Errorf("NeedsNodeProxyCA = %v, want %v", got, tt.needs)
			}
		})
	}
	if NeedsNodeProxyCA(nil, DefaultConfig()) {
		t.Error("no pod needs no CA")
	}
}

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// collectorYAML is the collector config an injected pod starts with.
func collectorYAML(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	out, err := CollectorConfigOf(pod)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
