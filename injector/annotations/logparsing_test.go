package annotations

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func TestParseLogParsing(t *testing.T) {
	tests := []struct {
		name              string
		ann               map[string]string
		multiline, parser map[string]string
		warns             []string // substrings, one per expected warning, in order
	}{
		{name: "pod-wide", ann: map[string]string{Multiline: "java", LogParser: "json"},
			multiline: map[string]string{"*": "java"}, parser: map[string]string{"*": "json"}},
		{name: "pod-wide regexes keep their , and =", ann: map[string]string{Multiline: `regex:^\d{4},`, LogParser: `regex:^(?P<k>\w+)=(?P<v>.*)$`},
			multiline: map[string]string{"*": `regex:^\d{4},`}, parser: map[string]string{"*": `regex:^(?P<k>\w+)=(?P<v>.*)$`}},
		{name: "per container, with spaces", ann: map[string]string{Multiline: " web=java , worker = python ", LogParser: "web=logfmt"},
			multiline: map[string]string{"web": "java", "worker": "python"}, parser: map[string]string{"web": "logfmt"}},
		{name: "every container with exceptions", ann: map[string]string{Multiline: "*=go,envoy=none"},
			multiline: map[string]string{"*": "go", "envoy": ""}},
		{name: "a per-container regex", ann: map[string]string{LogParser: `legacy=regex:^(?P<level>\w+) (?P<msg>.*)`},
			parser: map[string]string{"legacy": `regex:^(?P<level>\w+) (?P<msg>.*)`}},
		{name: "JSON", ann: map[string]string{Multiline: `{"web":"regex:^\\d{4}-\\d{2},","*":"nodejs"}`},
			multiline: map[string]string{"web": `regex:^\d{4}-\d{2},`, "*": "nodejs"}},

		{name: "unknown preset", ann: map[string]string{Multiline: "jav"},
			warns: []string{`annotation fargate-otel.io/multiline: the value for every container ignored (no parsing applies): "jav" is not a multiline preset: use one of dotnet, go, java, nodejs, python, ruby, or regex:<regex of a record's first line>`}},
		{name: "one bad entry, the others kept", ann: map[string]string{LogParser: "web=json,worker=xml,api=logfmt"},
			parser: map[string]string{"web": "json", "api": "logfmt"},
			warns:  []string{`the value for container worker ignored (the value for *, else no parsing applies): "xml" is not a log parser: use json, logfmt, or regex:<regex with named groups>`}},
		{name: "a regex that does not compile", ann: map[string]string{Multiline: "regex:^(unclosed"},
			warns: []string{"the first-line regex \"^(unclosed\" does not compile (Go RE2 syntax)"}},
		{name: "a parser regex without names", ann: map[string]string{LogParser: `regex:^(\w+) (.*)$`},
			warns: []string{"has no named group: name the parts to keep, e.g. regex:^(?P<level>\\w+) (?P<msg>.*)$"}},
		{name: "a regex split by the list form", ann: map[string]string{Multiline: `web=regex:^a{1,3}`},
			multiline: map[string]string{"web": "regex:^a{1"},
			warns:     []string{`"3}" ignored: not NAME=VALUE; write one value for every container (e.g. java), or values by container`}},
		{name: "not a container name", ann: map[string]string{Multiline: "Web_1=java"},
			warns: []string{`"Web_1" ignored: not a container name`}},
		{name: "twice", ann: map[string]string{LogParser: "web=json,web=logfmt"},
			parser: map[string]string{"web": "logfmt"}, warns: []string{"the value for container web is given twice; the last value is used"}},
		{name: "bad JSON", ann: map[string]string{Multiline: `{"web":["java"]}`},
			warns: []string{"ignored: not a JSON object of strings"}},
		{name: "empty", ann: map[string]string{LogParser: " "},
			warns: []string{"annotation fargate-otel.io/log-parser: empty; write one value for every container (e.g. json)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, warns := Parse(tt.ann)
			if !reflect.DeepEqual(o.Multiline, tt.multiline) || !reflect.DeepEqual(o.LogParser, tt.parser) {
				t.Errorf("multiline %q parser %q, want %q %q", o.Multiline, o.LogParser, tt.multiline, tt.parser)
			}
			checkWarnings(t, warns, tt.warns)
		})
	}
}

// FuzzParseLogParsing: whatever the value, parsing never fails and keeps
// only entries the collector accepts.
func FuzzParseLogParsing(f *testing.F) {
	for _, seed := range []string{"java", "web=java,worker=python", "*=go,envoy=none", `{"web":"regex:^\\d,"}`, "regex:^(", "a=b=c,,=,", `{"":""}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for key, check := range map[string]func(string) error{Multiline: sidecarconfig.CheckMultiline, LogParser: sidecarconfig.CheckParser} {
			o, _ := Parse(map[string]string{key: v})
			got := o.Multiline
			if key == LogParser {
				got = o.LogParser
			}
			for name, value := range got {
				if name != AllContainers && len(validation.IsDNS1123Label(name)) > 0 {
					t.Fatalf("%s=%q: kept the entry %q, not a container name", key, v, name)
				}
				if err := check(value); err != nil {
					t.Fatalf("%s=%q: kept %q for %s: %v", key, v, value, name, err)
				}
			}
		}
	})
}
