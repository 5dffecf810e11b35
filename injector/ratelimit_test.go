package injector

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

func TestLogRateLimitFromAnnotation(t *testing.T) {
	tests := []struct {
		name  string
		ann   map[string]string
		want  map[string][]string // the wrapper's budget flags by container
		warns []string
	}{
		{name: "none", want: map[string][]string{"web": nil, "worker": nil}},
		{name: "every container",
			ann:  map[string]string{annotations.LogRateLimit: "1000/s:5000 1Mi/s:4Mi"},
			want: map[string][]string{"web": {"--rate-limit-lines=1000", "--rate-limit-lines-burst=5000", "--rate-limit-bytes=1Mi", "--rate-limit-bytes-burst=4Mi"}, "worker": {"--rate-limit-lines=1000", "--rate-limit-lines-burst=5000", "--rate-limit-bytes=1Mi", "--rate-limit-bytes-burst=4Mi"}}},
		{name: "others and exceptions",
			ann:  map[string]string{annotations.LogRateLimit: "*=100/s,worker=none"},
			want: map[string][]string{"web": {"--rate-limit-lines=100"}, "worker": nil}},
		{name: "one container, bytes only",
			ann:  map[string]string{annotations.LogRateLimit: "worker=1000B/s"},
			want: map[string][]string{"web": nil, "worker": {"--rate-limit-bytes=1000"}}},
		{name: "a container that is not wrapped",
			ann:   map[string]string{annotations.SkipContainers: "worker", annotations.LogRateLimit: "worker=10/s,db=10/s,web=20/s"},
			want:  map[string][]string{"web": {"--rate-limit-lines=20"}, "worker": nil},
			warns: []string{`annotation fargate-otel.io/log-rate-limit names container "db", which is not a wrapped container`, `names container "worker", which is not a wrapped container`}},
		{name: "a container of log source api",
			ann:   map[string]string{annotations.LogSource: "worker=api", annotations.LogRateLimit: "*=10/s,worker=20/s"},
			want:  map[string][]string{"web": {"--rate-limit-lines=10"}},
			warns: []string{`annotation fargate-otel.io/log-rate-limit: container "worker" is read from the kubelet (log source api), which has no log budget; its entry is ignored`}},
		{name: "logs disabled",
			ann:   map[string]string{annotations.Logs: "disabled", annotations.LogRateLimit: "10/s"},
			warns: []string{"annotation fargate-otel.io/log-rate-limit has no effect: the pod's logs are disabled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := fargatePod("", "", tt.ann)
			pod.Spec.Containers = []corev1.Container{
				{Name: "web", Image: "web:1", Command: []string{"/web"}},
				{Name: "worker", Image: "worker:1", Command: []string{"/worker"}},
			}
			res := mutateChecked(t, pod, DefaultConfig(), nil)
			for name, want := range tt.want {
				c, _ := findContainer(res.Pod, name)
				var got []string
				for _, a := range c.Command {
					if strings.HasPrefix(a, "--rate-limit-") {
						got = append(got, a)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: budget flags %q, want %q (command %q)", name, got, want, c.Command)
				}
				// The flags are the wrapper's: before the command's "--".
				if len(want) > 0 && slices.Index(c.Command, "--") < slices.Index(c.Command, want[0]) {
					t.Errorf("%s: the budget follows the command's --: %q", name, c.Command)
				}
			}
			checkWarningsAbout(t, res.Warnings, tt.warns, annotations.LogRateLimit)
		})
	}
}

// TestUninjectTakesTheBudgetOut: re-injection starts from the user's
// command, so a changed budget replaces the old one.
func TestUninjectTakesTheBudgetOut(t *testing.T) {
	pod := fargatePod("", "", map[string]string{annotations.LogRateLimit: "10/s"})
	pod.Spec.Containers[0].Command = []string{"/web", "--port=80"}
	res := mutateChecked(t, pod, DefaultConfig(), nil)
	back, _, err := Uninject(res.Pod)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Spec.Containers[0].Command; !slices.Equal(got, []string{"/web", "--port=80"}) {
		t.Fatalf("uninjected command %q", got)
	}
	back.Annotations[annotations.LogRateLimit] = "20/s"
	again := mutateChecked(t, back, DefaultConfig(), nil)
	cmd := again.Pod.Spec.Containers[0].Command
	if !slices.Contains(cmd, "--rate-limit-lines=20") || slices.Contains(cmd, "--rate-limit-lines=10") {
		t.Fatalf("re-injected command %q", cmd)
	}
}
