package injector

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func TestLogParsingFromAnnotations(t *testing.T) {
	type parsing = sidecarconfig.Parsing
	tests := []struct {
		name  string
		ann   map[string]string
		want  sidecarconfig.LogParsing
		warns []string
	}{
		{name: "none", want: sidecarconfig.LogParsing{}},
		{name: "pod-wide: no per-container entries",
			ann:  map[string]string{annotations.Multiline: "go", annotations.LogParser: "web=json,worker=json"},
			want: sidecarconfig.LogParsing{Default: parsing{Multiline: "go"}, Containers: map[string]parsing{"web": {Multiline: "go", Parser: "json"}, "worker": {Multiline: "go", Parser: "json"}}}},
		{name: "an entry equal to the default is left out",
			ann:  map[string]string{annotations.Multiline: "*=java,web=java,worker=none"},
			want: sidecarconfig.LogParsing{Default: parsing{Multiline: "java"}, Containers: map[string]parsing{"worker": {}}}},
		{name: "each annotation falls back to its own default",
			ann:  map[string]string{annotations.Multiline: "*=python", annotations.LogParser: "*=logfmt,web=json"},
			want: sidecarconfig.LogParsing{Default: parsing{Multiline: "python", Parser: "logfmt"}, Containers: map[string]parsing{"web": {Multiline: "python", Parser: "json"}}}},
		{name: "a container that is not captured",
			ann:   map[string]string{annotations.SkipContainers: "worker", annotations.LogParser: "worker=json,db=json"},
			want:  sidecarconfig.LogParsing{},
			warns: []string{`annotation fargate-otel.io/log-parser names container "db", which is not a captured container`, `names container "worker", which is not a captured container`}},
		{name: "logs disabled",
			ann:   map[string]string{annotations.Logs: "disabled", annotations.Multiline: "java"},
			want:  sidecarconfig.LogParsing{},
			warns: []string{"annotation fargate-otel.io/multiline has no effect: the pod's logs are disabled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: tt.ann},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "web", Image: "web:1", Command: []string{"/web"}},
					{Name: "worker", Image: "worker:1", Command: []string{"/worker"}},
				}},
			}
			cc, warns, err := CollectorConfig(pod, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cc.LogParsing, tt.want) {
				t.Errorf("log parsing %+v, want %+v", cc.LogParsing, tt.want)
			}
			checkWarningsAbout(t, warns, tt.warns, annotations.Multiline, annotations.LogParser)
			if _, err := sidecarconfig.Render(cc); err != nil {
				t.Errorf("the config does not render: %v", err)
			}
		})
	}
}

// checkWarningsAbout fails unless the warnings that name one of keys are
// one per entry of want, each containing it, in order.
func checkWarningsAbout(t *testing.T, warns, want []string, keys ...string) {
	t.Helper()
	var ours []string
	for _, w := range warns {
		if slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(w, k) }) {
			ours = append(ours, w)
		}
	}
	if len(ours) != len(want) {
		t.Fatalf("warnings %q, want %d", ours, len(want))
	}
	for i, w := range want {
		if !strings.Contains(ours[i], w) {
			t.Errorf("warning %q lacks %q", ours[i], w)
		}
	}
}
