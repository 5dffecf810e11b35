package injector

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// TestOTLPEnv: which containers get the OTLP variable. Only captured
// containers, only the plaintext switch (no endpoint, no protocol: the SDKs'
// defaults reach the sidecar's gRPC and HTTP ports), and nothing where the
// app chose its own target. The proof that this works for both protocols
// with real SDK exporters and the real collector is in injector/otlpenvtest.
func TestOTLPEnv(t *testing.T) {
	for _, tt := range []struct {
		name    string
		edit    func(*corev1.Pod)
		want    map[string]bool // container -> gets OTEL_EXPORTER_OTLP_INSECURE
		warning string
	}{
		{"a captured container", nil, map[string]bool{"app": true, "worker": true}, ""},
		{"skipped by the user", func(p *corev1.Pod) { p.Annotations[annotations.SkipContainers] = "worker" },
			map[string]bool{"app": true, "worker": false}, ""},
		{"not named in containers", func(p *corev1.Pod) { p.Annotations[annotations.Containers] = "app" },
			map[string]bool{"app": true, "worker": false}, ""},
		{"unwrapped (followed), still given OTLP", func(p *corev1.Pod) { p.Spec.Containers[1].Command = nil },
			map[string]bool{"app": true, "worker": true}, "container worker is not wrapped"},
		{"the app's own endpoint", func(p *corev1.Pod) {
			setEnv(&p.Spec.Containers[0], "OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com")
		},
			map[string]bool{"app": false, "worker": true}, ""},
		{"the app's own traces endpoint", func(p *corev1.Pod) {
			setEnv(&p.Spec.Containers[0], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel.example.com:4317")
		}, map[string]bool{"app": false, "worker": true}, ""},
		{"the app's own insecure switch", func(p *corev1.Pod) { setEnv(&p.Spec.Containers[0], "OTEL_EXPORTER_OTLP_INSECURE", "false") },
			map[string]bool{"app": false, "worker": true}, ""},
		{"a protocol alone still gets it", func(p *corev1.Pod) { setEnv(&p.Spec.Containers[0], "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") },
			map[string]bool{"app": true, "worker": true}, ""},
		{"envFrom", func(p *corev1.Pod) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
		}, map[string]bool{"app": false, "worker": true}, "container app uses envFrom"},
		{"traces and metrics off", func(p *corev1.Pod) {
			p.Annotations[annotations.Traces] = annotations.Disabled
			p.Annotations[annotations.Metrics] = annotations.Disabled
		}, map[string]bool{"app": false, "worker": false}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := fargatePod("", "", map[string]string{})
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "worker", Image: "img", Command: []string{"/worker"}})
			if tt.edit != nil {
				tt.edit(pod)
			}
			res := Mutate(pod, DefaultConfig(), nil)
			if !res.Injected {
				t.Fatalf("not injected: %s %v", res.Skip, res.Warnings)
			}
			var withEnv []string
			for _, c := range res.Pod.Spec.Containers {
				if c.Name == CollectorContainerName {
					continue
				}
				got := envValue(&c, OTLPInsecureEnv) == "true"
				if got != tt.want[c.Name] {
					t.Errorf("container %s: %s set %v, want %v (env %v)", c.Name, OTLPInsecureEnv, got, tt.want[c.Name], c.Env)
				}
				if got {
					withEnv = append(withEnv, c.Name)
				}
				for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
					orig := envValue(&pod.Spec.Containers[slices.IndexFunc(pod.Spec.Containers, func(o corev1.Container) bool { return o.Name == c.Name })], name)
					if envValue(&c, name) != orig {
						t.Errorf("container %s: the injector set %s (an endpoint or protocol for one protocol breaks SDKs of the other)", c.Name, name)
					}
				}
			}
			if !slices.Equal(res.Status.OTLPEnv, withEnv) {
				t.Errorf("status otlpEnv %v, want %v", res.Status.OTLPEnv, withEnv)
			}
			if tt.warning != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tt.warning) {
				t.Errorf("no warning with %q: %v", tt.warning, res.Warnings)
			}
		})
	}
}

func setEnv(c *corev1.Container, name, value string) {
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}
