package injector

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig(nil)
	if err != nil || !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Fatalf("empty file: %v %+v", err, cfg)
	}
	cfg, err = ParseConfig([]byte(`
images:
  tee: r.example.com/tee:1
clusterName: prod
scope: all
nativeSidecars: false
signals: {logs: true, metrics: false, traces: true}
exporters:
- id: otlp_http/vendor
  config: {endpoint: "https://x.example.com"}
  signals: [logs]
kubeletStats:
  mode: direct
  interval: 1m
logs:
  volumeSizeLimit: 1Gi
  maxBackups: 0
collector:
  resources:
    requests: {cpu: 50m}
    limits: {memory: 512Mi}
fargateSizing: fixed
`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	if cfg.Images.Tee != "r.example.com/tee:1" || cfg.Images.Collector != want.Images.Collector {
		t.Errorf("images %+v: a field left out must keep its default", cfg.Images)
	}
	if cfg.ClusterName != "prod" || cfg.Scope != ScopeAll || cfg.NativeSidecars || cfg.Signals.Metrics || !cfg.Signals.Logs {
		t.Errorf("%+v", cfg)
	}
	if len(cfg.Exporters) != 1 || cfg.Exporters[0].Config["endpoint"] != "https://x.example.com" || cfg.Exporters[0].Signals[0] != "logs" {
		t.Errorf("exporters %+v", cfg.Exporters)
	}
	if cfg.KubeletStats.Mode != KubeletStatsDirect || cfg.KubeletStats.Interval.Duration != time.Minute || cfg.KubeletStats.NodeProxy != want.KubeletStats.NodeProxy {
		t.Errorf("kubeletStats %+v", cfg.KubeletStats)
	}
	if cfg.Logs.VolumeSizeLimit.String() != "1Gi" || cfg.Logs.MaxBackups != 0 || cfg.Logs.MaxSize.String() != "10Mi" {
		t.Errorf("logs %+v", cfg.Logs)
	}
	// Maps merge over the defaults, key by key.
	if cfg.Collector.Resources.Requests.Cpu().String() != "50m" || cfg.Collector.Resources.Requests.Memory().String() != "128Mi" ||
		cfg.Collector.Resources.Limits.Memory().String() != "512Mi" {
		t.Errorf("collector %+v", cfg.Collector.Resources)
	}
	if cfg.FargateSizing != "fixed" {
		t.Errorf("sizing %q", cfg.FargateSizing)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"clusterNmae: x", `unknown field "clusterNmae"`},
		{"scope: everywhere", `scope "everywhere" is neither "fargate" nor "all"`},
		{"kubeletStats: {mode: sideways}", `kubeletStats.mode "sideways" is not proxy, direct or off`},
		{"kubeletStats: {nodeProxy: {service: ''}}", "kubeletStats.nodeProxy needs service"},
		{"kubeletStats: {interval: 10ms}", "kubeletStats.interval 10ms is below 1s"},
		{"logs: {volumeSizeLimit: 1Mi}", "logs.volumeSizeLimit 1Mi is below 16Mi"},
		{"logs: {format: json}", `logs.format "json" is neither cri nor raw`},
		{"collector: {resources: {limits: {memory: 32Mi}}}", "collector.resources.limits.memory 32Mi is below the 64Mi"},
		{"collector: {healthCheckPort: 0}", "collector.healthCheckPort 0 is not a port"},
		{"collector: {resources: {requests: {memory: 1Gi}}}", "collector.resources: the memory request 1Gi is above its limit 256Mi"},
		{"fargateSizing: tight", `fargateSizing "tight" is neither fit nor fixed`},
		{"runAsUser: 0", "runAsUser 0 must be a non-root uid"},
		{"exporters: [{id: ''}]", "exporters[0]: id is empty"},
		{"exporters: [{id: debug, signals: [profiles]}]", `signal "profiles" is not logs, metrics or traces`},
		{"images: {tee: ''}", "images.tee is empty"},
	} {
		_, err := ParseConfig([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.yaml, err, tt.want)
		}
	}
	// Every problem at once.
	_, err := ParseConfig([]byte("scope: x\nfargateSizing: y\n"))
	if err == nil || !strings.Contains(err.Error(), "scope") || !strings.Contains(err.Error(), "fargateSizing") {
		t.Errorf("got %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "injector.yaml")
	if err := os.WriteFile(path, []byte("clusterName: from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil || cfg.ClusterName != "from-file" {
		t.Fatalf("%v %q", err, cfg.ClusterName)
	}
	if _, err := LoadConfig(path + ".missing"); err == nil || !strings.Contains(err.Error(), "read injector config") {
		t.Fatalf("got %v", err)
	}
	if err := os.WriteFile(path, []byte("scope: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("the error must name the file: %v", err)
	}
}
