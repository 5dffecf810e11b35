package desired

import (
	"strings"
	"testing"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func TestParseSource(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"", "cluster", ""},
		{"cluster", "cluster", ""},
		{"configmap:team/exporters.yaml", "configmap:team/exporters.yaml", ""},
		{"configmap:../other/x", "", "not a ConfigMap name"},
		{"configmap:other/ns/x", "", "not a ConfigMap key"},
		{"configmap:team", "", "want"},
		{"secret:x/y", "", "want"},
	} {
		s, err := ParseSource(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || s.String() != c.want {
			t.Errorf("%q: %v %v", c.in, s, err)
		}
	}
}

func TestParseLive(t *testing.T) {
	l, err := ParseLive(map[string]string{KeyLogLevel: "debug", KeyTraceSampling: "0.5", KeyKubeletStatsInterval: "1m", KeyExporters: "[]"})
	if err != nil || l.LogLevel != "debug" || *l.TraceSampling != 0.5 || l.Exporters != nil {
		t.Errorf("%+v %v", l, err)
	}
	_, err = ParseLive(map[string]string{KeyLogLevel: "loud", KeyTraceSampling: "2", KeyKubeletStatsInterval: "0s", KeyExporters: "- id: nosuch/x"})
	for _, want := range []string{"loud", "traceSampling", "kubeletStatsInterval", "nosuch"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestCompute(t *testing.T) {
	live := Live{LogLevel: "warn", Exporters: []sidecarconfig.Exporter{{ID: "debug"}}}
	good := "- id: otlp_http/team\n  config:\n    endpoint: https://x\n  signals: [logs]\n"
	src := Source{ConfigMap: "exp", Key: "list"}
	for _, c := range []struct {
		name string
		src  Source
		ns   Namespace
		want string // in the body, or the error
		sent bool
	}{
		{"cluster", Source{}, Namespace{}, `"id":"debug"`, true},
		{"namespace", src, Namespace{Known: true, Data: map[string]string{"list": good}}, `"id":"otlp_http/team"`, true},
		{"not read yet", src, Namespace{}, "not read yet", false},
		{"missing", src, Namespace{Known: true, Err: "ConfigMap ns/exp not found"}, "not found", false},
		{"no key", src, Namespace{Known: true, Data: map[string]string{}}, `no key "list"`, false},
		{"bad", src, Namespace{Known: true, Data: map[string]string{"list": "- id: nosuch/x\n"}}, "nosuch", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Compute(live, c.src, c.ns)
			if (d.Body != nil) != c.sent {
				t.Fatalf("sent %v: %+v", d.Body != nil, d)
			}
			got := string(d.Body) + d.Error
			if !strings.Contains(got, c.want) {
				t.Errorf("%s, want %q", got, c.want)
			}
			if c.sent && (!strings.Contains(got, `"logLevel":"warn"`) || len(d.Hash) != 32) {
				t.Errorf("%s (hash %x)", got, d.Hash)
			}
		})
	}
}
