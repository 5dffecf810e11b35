package sidecarconfig

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// variants are the rendered configs kept as golden files; the binary test
// validates every one of them with the real collector.
func variants() map[string]Config {
	v := map[string]Config{}

	v["default"] = Default()

	c := Default()
	c.ClusterName = "prod-eu-1"
	c.MemoryLimitMiB = 128
	v["cluster-and-memory-limit"] = c

	c = Default()
	c.Signals = []Signal{Logs}
	v["logs-only"] = c

	c = Default()
	c.Signals = []Signal{Metrics}
	c.KubeletStats.Endpoint = "https://fargate-otel-nodeproxy.fargate-otel.svc/api/v1/nodes/${env:NODE_NAME}/proxy"
	c.KubeletStats.CAFile = "/var/run/fargate-otel/nodeproxy/ca.crt"
	c.KubeletStats.Interval = 15 * time.Second
	v["metrics-only-nodeproxy"] = c

	c = Default()
	c.Signals = []Signal{Traces}
	v["traces-only"] = c

	c = Default()
	c.Signals = []Signal{Metrics, Traces}
	c.KubeletStats.Disabled = true
	v["no-kubelet-stats"] = c

	c = Default()
	c.ClusterName = "dev"
	c.Exporters = []Exporter{
		{ID: "otlp_http/vendor", Config: map[string]any{
			"endpoint": "https://otlp.example.com",
			"headers":  map[string]any{"api-key": "${env:VENDOR_API_KEY}"},
		}},
		{ID: "debug", Config: map[string]any{"verbosity": "basic"}, Signals: []Signal{Logs}},
		{ID: "file/traces", Config: map[string]any{"path": "/var/lib/fargate-otel/traces.json"}, Signals: []Signal{Traces}},
	}
	v["several-exporters"] = c

	c = Default()
	c.OTLP = OTLP{GRPCEndpoint: "127.0.0.1:14317", HTTPEndpoint: "127.0.0.1:14318"}
	c.HealthCheckEndpoint = "127.0.0.1:23133"
	c.Exporters = []Exporter{GatewayExporter("127.0.0.1:24317")}
	c.LogInclude = []string{"/tmp/pods/*/*/*.log", "/tmp/pods/*/*/*.log.*"}
	c.LogExclude = []string{"/tmp/pods/.*/**"}
	c.StorageDir = "/tmp/state"
	c.DrainTimeout = 7 * time.Second
	v["other-ports-and-paths"] = c

	c = Default()
	c.DrainTimeout = 0
	v["no-drain"] = c

	// What the fleet's live settings may change: a quarter of the traces
	// kept (probabilistic_sampler), the collector's own logs at warn.
	c = Default()
	c.TraceSampling = 0.25
	c.LogLevel = "warn"
	v["trace-sampling"] = c

	// Log parsing: pod-wide only (no router), per container with a
	// default (router, branches, a container turned off, custom regexes
	// with $ and \), and every multiline preset.
	c = Default()
	c.LogParsing.Default = Parsing{Multiline: "java", Parser: "json"}
	v["log-parsing-pod"] = c

	c = Default()
	c.LogParsing = LogParsing{
		Default: Parsing{Parser: "logfmt"},
		Containers: map[string]Parsing{
			"web":    {Multiline: "python", Parser: "json"},
			"worker": {Multiline: "go"},
			"envoy":  {},
			"legacy": {Multiline: `regex:^\d{4}-\d{2}-\d{2}`, Parser: `regex:^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*)$`},
		},
	}
	v["log-parsing-containers"] = c

	c = Default()
	c.LogParsing.Containers = map[string]Parsing{}
	for _, preset := range MultilinePresets() {
		c.LogParsing.Containers[preset+"-app"] = Parsing{Multiline: preset}
	}
	v["multiline-presets"] = c

	return v
}

func TestRenderGolden(t *testing.T) {
	for name, cfg := range variants() {
		t.Run(name, func(t *testing.T) {
			got, err := Render(cfg)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			golden := filepath.Join("testdata", name+".yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendered config differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

// TestRenderShape checks the properties the pipelines rely on, independently
// of the golden files' exact text.
func TestRenderShape(t *testing.T) {
	out, err := Render(variants()["cluster-and-memory-limit"])
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Receivers  map[string]map[string]any `yaml:"receivers"`
		Processors map[string]map[string]any `yaml:"processors"`
		Service    struct {
			Pipelines map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	for _, sig := range AllSignals {
		p, ok := doc.Service.Pipelines[string(sig)]
		if !ok {
			t.Fatalf("no %s pipeline", sig)
		}
		if len(p.Processors) == 0 || p.Processors[0] != "memory_limiter" {
			t.Errorf("%s: memory_limiter must come first, got %v", sig, p.Processors)
		}
		if p.Processors[1] != "resource" {
			t.Errorf("%s: resource must follow memory_limiter, got %v", sig, p.Processors)
		}
		if len(p.Exporters) != 1 || p.Exporters[0] != DefaultGatewayExporterID {
			t.Errorf("%s: exporters = %v", sig, p.Exporters)
		}
	}
	fl := doc.Receivers["file_log"]
	if fl["start_at"] != "beginning" || fl["include_file_path"] != true || fl["storage"] != "file_storage" {
		t.Errorf("file_log = %v", fl)
	}
	ml := doc.Processors["memory_limiter"]
	if ml["limit_mib"] != 102 || ml["spike_limit_mib"] != 25 {
		t.Errorf("memory_limiter for 128 MiB = %v", ml)
	}
	if !strings.Contains(string(out), "value: prod-eu-1") {
		t.Errorf("cluster name missing:\n%s", out)
	}
}

// The storage directory must never be read as a log: file_storage's files
// sit on the logs volume, seen from /var/log/pods/.fargate-otel-state.
func TestStorageIsNotALog(t *testing.T) {
	cfg := Default()
	stateFiles := []string{
		"/var/log/pods/.fargate-otel-state/receiver_file_log_",
		"/var/log/pods/.fargate-otel-state/exporter_otlp_grpc_gateway_logs",
		"/var/log/pods/.fargate-otel-state/a/b.log",
		"/var/log/pods/.fargate-otel-state/a/b/c.log",
	}
	for _, f := range stateFiles {
		if matchesAny(t, cfg.LogInclude, f) && !matchesAny(t, cfg.LogExclude, f) {
			t.Errorf("%s would be read as a log", f)
		}
	}
	logs := []string{
		"/var/log/pods/default_web-1_0f3c/app/0.log",
		"/var/log/pods/default_web-1_0f3c/app/0.log.20261122-101500",
	}
	for _, f := range logs {
		if !matchesAny(t, cfg.LogInclude, f) || matchesAny(t, cfg.LogExclude, f) {
			t.Errorf("%s would not be read", f)
		}
	}
}

// matchesAny approximates file_log's doublestar globs for the patterns used
// here: ** spans folders, * does not.
func matchesAny(t *testing.T, globs []string, name string) bool {
	t.Helper()
	for _, g := range globs {
		if prefix, ok := strings.CutSuffix(g, "/**"); ok {
			if m, _ := filepath.Match(prefix, filepath.Dir(name)); m {
				return true
			}
			if m, _ := filepath.Match(prefix+"/*", filepath.Dir(name)); m {
				return true
			}
			continue
		}
		m, err := filepath.Match(g, name)
		if err != nil {
			t.Fatalf("glob %q: %v", g, err)
		}
		if m {
			return true
		}
	}
	return false
}

func TestClusterNameIsLiteral(t *testing.T) {
	c := Default()
	c.ClusterName = "a${env:HOME}"
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "a$${env:HOME}") {
		t.Errorf("cluster name not escaped:\n%s", out)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{"no signals", func(c *Config) { c.Signals = nil }, []string{"no signal enabled"}},
		{"unknown signal", func(c *Config) { c.Signals = []Signal{"profiles"} }, []string{`unknown signal "profiles"`}},
		{"signal twice", func(c *Config) { c.Signals = []Signal{Logs, Logs} }, []string{`"logs" is listed twice`}},
		{"no exporter", func(c *Config) { c.Exporters = nil }, []string{`signal "logs" has no exporter`, `signal "traces" has no exporter`}},
		{"exporter for traces only", func(c *Config) { c.Exporters[0].Signals = []Signal{Traces} }, []string{`signal "metrics" has no exporter`}},
		{"exporter type not built in", func(c *Config) { c.Exporters[0].ID = "kafka" }, []string{`type "kafka" is not built into`, "README"}},
		{"bad exporter type", func(c *Config) { c.Exporters[0].ID = "otlp grpc" }, []string{"letters, digits and _"}},
		{"bad exporter name", func(c *Config) { c.Exporters[0].ID = "debug/" }, []string{"name after / must be non-empty"}},
		{"exporter twice", func(c *Config) { c.Exporters = append(c.Exporters, c.Exporters[0]) }, []string{"defined twice"}},
		{"relative storage", func(c *Config) { c.StorageDir = "state" }, []string{"absolute path"}},
		{"no include", func(c *Config) { c.LogInclude = nil }, []string{"no log file is included"}},
		{"kubelet endpoint", func(c *Config) { c.KubeletStats.Endpoint = "kubernetes.default.svc" }, []string{"must be an http(s) URL"}},
		{"kubelet interval", func(c *Config) { c.KubeletStats.Interval = 0 }, []string{"interval 0s must be positive"}},
		{"no otlp endpoint", func(c *Config) { c.OTLP.GRPCEndpoint = "" }, []string{"OTLP receiver needs both endpoints"}},
		{"no health check", func(c *Config) { c.HealthCheckEndpoint = "" }, []string{"health check endpoint is empty"}},
		{"memory too small", func(c *Config) { c.MemoryLimitMiB = 32 }, []string{"at least 64 MiB"}},
		{"negative drain", func(c *Config) { c.DrainTimeout = -time.Second }, []string{"drain timeout -1s is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			_, err := Render(c)
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaultIsAFreshCopy(t *testing.T) {
	a := Default()
	a.LogInclude[0] = "changed"
	a.Signals[0] = Traces
	a.Exporters[0].Config["endpoint"] = "changed"
	b := Default()
	if b.LogInclude[0] == "changed" || b.Signals[0] == Traces || b.Exporters[0].Config["endpoint"] == "changed" {
		t.Error("Default shares state between calls")
	}
}
