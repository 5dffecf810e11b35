package annotations

import (
	"reflect"
	"testing"
)

func TestParseLogSource(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  map[string]string
		warns []string // substrings, one per expected warning, in order
	}{
		{name: "every container", value: "api", want: map[string]string{"*": "api"}},
		{name: "spaces", value: " wrap ", want: map[string]string{"*": "wrap"}},
		{name: "per container", value: "web=api, worker = wrap", want: map[string]string{"web": "api", "worker": "wrap"}},
		{name: "others and exceptions", value: "*=api,envoy=auto", want: map[string]string{"*": "api", "envoy": "auto"}},
		{name: "JSON", value: `{"web":"api","*":"wrap"}`, want: map[string]string{"web": "api", "*": "wrap"}},

		{name: "unknown value", value: "kubelet",
			warns: []string{`annotation fargate-otel.io/log-source: the value for every container ignored (auto applies): "kubelet" is not auto, wrap or api`}},
		{name: "one bad entry, the others kept", value: "web=api,worker=tail,db=wrap", want: map[string]string{"web": "api", "db": "wrap"},
			warns: []string{`the value for container worker ignored (auto applies): "tail" is not auto, wrap or api`}},
		{name: "not NAME=VALUE", value: "web=api,wrap", want: map[string]string{"web": "api"},
			warns: []string{`"wrap" ignored: not NAME=VALUE; write auto, wrap or api for every captured container, or values by container such as web=api,worker=wrap`}},
		{name: "not a container name", value: "Web_1=api", warns: []string{`"Web_1" ignored: not a container name`}},
		{name: "twice", value: "web=api,web=wrap", want: map[string]string{"web": "wrap"},
			warns: []string{"the value for container web is given twice; the last value is used"}},
		{name: "bad JSON", value: `{"web":1}`, warns: []string{"ignored: not a JSON object of strings"}},
		{name: "empty", value: "  ", warns: []string{"annotation fargate-otel.io/log-source: empty; write auto, wrap or api"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, warns := Parse(map[string]string{LogSource: tt.value})
			if !reflect.DeepEqual(o.LogSource, tt.want) {
				t.Errorf("log source %q, want %q", o.LogSource, tt.want)
			}
			checkWarnings(t, warns, tt.warns)
		})
	}
}

func TestLogSourceIsKnown(t *testing.T) {
	if _, warns := Parse(map[string]string{LogSource: "auto"}); len(warns) != 0 {
		t.Fatalf("warnings %q", warns)
	}
	found := false
	for _, k := range Known() {
		found = found || k == LogSource
	}
	if !found {
		t.Fatalf("%s is not in Known()", LogSource)
	}
}
