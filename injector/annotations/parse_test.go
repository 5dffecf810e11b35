package annotations

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name  string
		ann   map[string]string
		check func(t *testing.T, o Options)
		warns []string // substrings, one per expected warning
	}{
		{"nothing set", nil, func(t *testing.T, o Options) {
			if !reflect.DeepEqual(o, Options{}) {
				t.Fatalf("%+v", o)
			}
		}, nil},
		{"other prefixes ignored", map[string]string{"example.com/containers": "x", "fargate-otel.io/status": "{}"}, func(t *testing.T, o Options) {
			if o.Containers != nil {
				t.Fatal(o.Containers)
			}
		}, nil},
		{"containers, spaces and empties", map[string]string{Containers: " app, ,worker ", SkipContainers: "istio-proxy"}, func(t *testing.T, o Options) {
			if !reflect.DeepEqual(o.Containers, []string{"app", "worker"}) || !reflect.DeepEqual(o.SkipContainers, []string{"istio-proxy"}) {
				t.Fatalf("%q %q", o.Containers, o.SkipContainers)
			}
		}, nil},
		{"signals", map[string]string{Logs: "disabled", Metrics: "Enabled", Traces: "false"}, func(t *testing.T, o Options) {
			if *o.Logs != no || *o.Metrics != yes || *o.Traces != no {
				t.Fatal(*o.Logs, *o.Metrics, *o.Traces)
			}
		}, nil},
		{"bad signal", map[string]string{Logs: "sometimes"}, func(t *testing.T, o Options) {
			if o.Logs != nil {
				t.Fatal("a bad value must keep the default")
			}
		}, []string{`annotation fargate-otel.io/logs ignored: "sometimes" is neither "enabled" nor "disabled"`}},
		{"command array", map[string]string{Command: `["/bin/app","--x"]`}, func(t *testing.T, o Options) {
			if !reflect.DeepEqual(o.Command, []string{"/bin/app", "--x"}) || o.Commands != nil {
				t.Fatal(o.Command, o.Commands)
			}
		}, nil},
		{"command object", map[string]string{Command: `{"a":["/a"],"b":["/b","1"]}`}, func(t *testing.T, o Options) {
			if o.Command != nil || !reflect.DeepEqual(o.Commands, map[string][]string{"a": {"/a"}, "b": {"/b", "1"}}) {
				t.Fatal(o.Command, o.Commands)
			}
		}, nil},
		{"bad commands", map[string]string{Command: `/bin/app --x`}, nil, []string{"not a JSON array of strings: invalid character"}},
		{"empty command", map[string]string{Command: `[]`}, nil, []string{"the command is empty"}},
		{"empty command in object", map[string]string{Command: `{"a":[]}`}, nil, []string{`the command of "a" is empty`}},
		{"sizes", map[string]string{LogMaxSize: "5Mi", LogsVolumeSize: "1Gi", LogMaxBackups: "3", LogFormat: "raw"}, func(t *testing.T, o Options) {
			if o.LogMaxSize.String() != "5Mi" || o.LogsVolumeSize.String() != "1Gi" || *o.LogMaxBackups != 3 || o.LogFormat != "raw" {
				t.Fatalf("%+v", o)
			}
		}, nil},
		{"bad sizes", map[string]string{LogMaxSize: "0", LogsVolumeSize: "lots", LogMaxBackups: "-1", LogFormat: "json"}, nil,
			[]string{`"json" is neither "cri" nor "raw"`, `log-max-backups ignored: "-1" is not a whole number`, `log-max-size ignored: "0" is not positive`, `logs-volume-size ignored: "lots" is not a size`}},
		{"exporters", map[string]string{Exporters: "team"}, func(t *testing.T, o Options) {
			if *o.Exporters != (ConfigMapRef{Name: "team", Key: DefaultExportersKey}) {
				t.Fatal(o.Exporters)
			}
		}, nil},
		{"exporters with key", map[string]string{Exporters: "team/prod.yaml"}, func(t *testing.T, o Options) {
			if *o.Exporters != (ConfigMapRef{Name: "team", Key: "prod.yaml"}) {
				t.Fatal(o.Exporters)
			}
		}, nil},
		{"bad exporters", map[string]string{Exporters: "Team_X"}, nil, []string{`"Team_X" is not a ConfigMap name`}},
		{"collector resources", map[string]string{CollectorResources: `{"requests":{"cpu":"50m"},"limits":{"memory":"128Mi"}}`}, func(t *testing.T, o Options) {
			if o.CollectorResources.Limits.Memory().String() != "128Mi" || o.CollectorResources.Requests.Cpu().String() != "50m" {
				t.Fatalf("%+v", o.CollectorResources)
			}
		}, nil},
		{"bad collector resources", map[string]string{CollectorResources: `{"limits":{"memory":"32Mi"}}`}, nil, []string{"below the 64Mi the collector needs"}},
		{"request above limit", map[string]string{CollectorResources: `{"requests":{"memory":"1Gi"},"limits":{"memory":"128Mi"}}`}, nil, []string{"the memory request 1Gi is above its limit 128Mi"}},
		{"unknown resource", map[string]string{CollectorResources: `{"requests":{"nvidia.com/gpu":"1"}}`}, nil, []string{"only cpu and memory"}},
		{"unknown field", map[string]string{CollectorResources: `{"request":{}}`}, nil, []string{`unknown field "request"`}},
		{"sizing", map[string]string{FargateSizing: "fixed"}, func(t *testing.T, o Options) {
			if o.FargateSizing != "fixed" {
				t.Fatal(o.FargateSizing)
			}
		}, nil},
		{"a pod cannot choose its kubelet stats mode", map[string]string{KubeletStats: "direct"}, func(t *testing.T, o Options) {
			if !reflect.DeepEqual(o, Options{}) {
				t.Fatalf("%+v", o)
			}
		}, []string{"annotation fargate-otel.io/kubelet-stats ignored: the kubelet stats mode is chosen per namespace, by a cluster admin"}},
		{"typo", map[string]string{Prefix + "log-maxsize": "5Mi"}, nil, []string{"annotation fargate-otel.io/log-maxsize is not one fargate-otel knows (typo?); known: fargate-otel.io/containers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, warns := Parse(tt.ann)
			if tt.check != nil {
				tt.check(t, o)
			}
			checkWarnings(t, warns, tt.warns)
		})
	}
}

// checkWarnings fails unless got has one warning per entry of want, each
// containing it, in order.
func checkWarnings(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d like %q", got, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("warning %q does not contain %q", got[i], w)
		}
	}
}
