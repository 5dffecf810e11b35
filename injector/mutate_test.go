package injector

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// fargatePod is a one-container Fargate pod with the given requests.
func fargatePod(cpu, mem string, ann map[string]string) *corev1.Pod {
	rr := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if cpu != "" {
		rr.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		rr.Requests[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{FargateProfileLabel: "fp"}, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "img", Command: []string{"/app"}, Resources: rr}}},
	}
}

func collectorOf(t *testing.T, pod *corev1.Pod) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == CollectorContainerName {
				return &list[i]
			}
		}
	}
	t.Fatal("no collector")
	return nil
}

func TestNilPod(t *testing.T) {
	res := Mutate(nil, DefaultConfig(), nil)
	if res.Pod != nil || res.Skip != SkipInvalid || ImagesToResolve(nil, DefaultConfig()) != nil {
		t.Fatalf("%+v", res)
	}
}

func TestSkips(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*corev1.Pod, *Config)
		skip SkipReason
		warn string
	}{
		{"opt-out label", func(p *corev1.Pod, _ *Config) { p.Labels[annotations.Inject] = annotations.Disabled }, SkipOptedOut, ""},
		{"opt-out annotation", func(p *corev1.Pod, _ *Config) { p.Annotations = map[string]string{annotations.Inject: "disabled"} }, SkipOptedOut, ""},
		{"not fargate", func(p *corev1.Pod, _ *Config) { p.Labels = nil }, SkipNotFargate, "does not run on Fargate"},
		{"windows", func(p *corev1.Pod, _ *Config) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }, SkipWindows, "Windows"},
		{"no containers", func(p *corev1.Pod, _ *Config) { p.Spec.Containers = nil }, SkipInvalid, "no containers"},
		{"all signals off", func(p *corev1.Pod, _ *Config) {
			p.Annotations = map[string]string{annotations.Logs: "disabled", annotations.Metrics: "disabled", annotations.Traces: "disabled"}
		}, SkipNoSignals, "all disabled"},
		{"our volume name taken", func(p *corev1.Pod, _ *Config) {
			p.Spec.Volumes = []corev1.Volume{{Name: "fargate-otel-logs"}}
		}, SkipConflict, "volume fargate-otel-logs"},
		{"health port taken", func(p *corev1.Pod, _ *Config) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 13133}}
		}, SkipConflict, "port 13133 of container app"},
		{"a Job without native sidecars", func(p *corev1.Pod, c *Config) {
			p.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
			c.NativeSidecars = false
		}, SkipNeedsSidecars, "restartPolicy OnFailure needs native sidecars"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := fargatePod("", "", nil)
			cfg := DefaultConfig()
			tt.edit(pod, &cfg)
			res := mutateChecked(t, pod, cfg, nil)
			if res.Skip != tt.skip {
				t.Fatalf("skip %q, want %q", res.Skip, tt.skip)
			}
			if tt.warn == "" && len(res.Warnings) > 0 || tt.warn != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tt.warn)) {
				t.Fatalf("warnings %q, want %q", res.Warnings, tt.warn)
			}
			if ImagesToResolve(pod, cfg) != nil {
				t.Fatal("images to resolve for a skipped pod")
			}
		})
	}
}

func TestImagesToResolve(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{FargateProfileLabel: "x"},
			Annotations: map[string]string{annotations.Command: `{"given":["/g"]}`, annotations.Containers: "init-nocmd,a,b,given,c"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init-nocmd", Image: "i"}, {Name: "init-unselected", Image: "u"}},
			Containers: []corev1.Container{
				{Name: "a", Image: "img-a"},
				{Name: "b", Image: "img-b", Command: []string{"/b"}},
				{Name: "given", Image: "img-g"},
				{Name: "c", Image: "img-a", Args: []string{"x"}},
				{Name: "d", Image: "img-d"},
			},
		},
	}
	got := ImagesToResolve(pod, DefaultConfig())
	want := []ImageRequest{{"init-nocmd", "i"}, {"a", "img-a"}, {"c", "img-a"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	pod.Annotations[annotations.Logs] = "disabled"
	if got := ImagesToResolve(pod, DefaultConfig()); got != nil {
		t.Fatalf("logs off: nothing is wrapped, nothing to resolve; got %v", got)
	}
}

func TestCommandResolution(t *testing.T) {
	images := Images{
		"ep-cmd": {Config: &ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"c1", "$(X)"}}},
		"cmd":    {Config: &ImageConfig{Cmd: []string{"/bin/sh", "-c", "echo $HOME"}}},
		"empty":  {Config: &ImageConfig{}},
	}
	for _, tt := range []struct {
		name      string
		c         corev1.Container
		annotated []string
		after     []string // what follows "--" in the new command
		warn      string
	}{
		{"spec command", corev1.Container{Command: []string{"/x", "$(A)"}, Args: []string{"y"}, Image: "ep-cmd"}, nil, []string{"/x", "$(A)"}, ""},
		{"annotation over image", corev1.Container{Image: "ep-cmd"}, []string{"/ann"}, []string{"/ann"}, ""},
		{"entrypoint + cmd, $ kept literal", corev1.Container{Image: "ep-cmd"}, nil, []string{"/ep", "c1", "$$(X)"}, ""},
		{"entrypoint + spec args (cmd dropped)", corev1.Container{Image: "ep-cmd", Args: []string{"a"}}, nil, []string{"/ep"}, ""},
		{"cmd only", corev1.Container{Image: "cmd"}, nil, []string{"/bin/sh", "-c", "echo $$HOME"}, ""},
		{"no entrypoint, spec args run as the command", corev1.Container{Image: "empty", Args: []string{"/a"}}, nil, []string{}, ""},
		{"nothing at all", corev1.Container{Name: "n", Image: "empty"}, nil, nil, "image empty has neither ENTRYPOINT nor CMD"},
		{"not looked up", corev1.Container{Name: "n", Image: "other"}, nil, nil, "was not looked up"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, warn := originalCommand(&tt.c, tt.annotated, images)
			if tt.warn != "" {
				if !strings.Contains(warn, tt.warn) || !strings.Contains(warn, "set command in the pod spec or the annotation fargate-otel.io/command") {
					t.Fatalf("warning %q", warn)
				}
				return
			}
			if warn != "" || !slices.Equal(a.words, tt.after) {
				t.Fatalf("got %q (%s), want %q", a.words, warn, tt.after)
			}
		})
	}
}

func TestFargateFit(t *testing.T) {
	for _, tt := range []struct {
		name          string
		pod           *corev1.Pod
		cfg           func(*Config)
		cpu, mem      string // collector requests; "" = none
		before, after string
		warn          string
	}{
		{"no requests: defaults fit the smallest size", fargatePod("", "", nil), nil, "100m", "128Mi", "0.25vCPU 0.5GB", "0.25vCPU 0.5GB", ""},
		{"cpu headroom of 50m", fargatePod("200m", "", nil), nil, "50m", "128Mi", "0.25vCPU 0.5GB", "0.25vCPU 0.5GB", ""},
		{"memory headroom of 100Mi", fargatePod("", "156Mi", nil), nil, "100m", "100Mi", "0.25vCPU 0.5GB", "0.25vCPU 0.5GB", ""},
		// An explicit zero: a missing request would be defaulted to the limit.
		{"no cpu headroom: a zero cpu request", fargatePod("1", "", nil), nil, "0", "128Mi", "1vCPU 2GB", "1vCPU 2GB", ""},
		{"memory floor crosses a step", fargatePod("250m", "240Mi", nil), nil, "0", "64Mi", "0.25vCPU 0.5GB", "0.25vCPU 1GB", "from 0.25vCPU 0.5GB to 0.25vCPU 1GB"},
		{"fixed mode", fargatePod("250m", "", nil), func(c *Config) { c.FargateSizing = "fixed" }, "100m", "128Mi", "0.25vCPU 0.5GB", "0.5vCPU 1GB", "raises the pod's Fargate size"},
		{"fixed by annotation", fargatePod("250m", "", map[string]string{annotations.FargateSizing: "fixed"}), nil, "100m", "128Mi", "0.25vCPU 0.5GB", "0.5vCPU 1GB", "raises"},
		{"the pod's own collector resources", fargatePod("", "", map[string]string{annotations.CollectorResources: `{"requests":{"cpu":"1"},"limits":{"memory":"1Gi"}}`}), nil,
			"1", "", "0.25vCPU 0.5GB", "1vCPU 2GB", "raises"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			res := mutateChecked(t, tt.pod, cfg, nil)
			c := collectorOf(t, res.Pod)
			gotCPU, gotMem := "", ""
			if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
				gotCPU = q.String()
			}
			if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
				gotMem = q.String()
			}
			if gotCPU != tt.cpu || gotMem != tt.mem {
				t.Errorf("collector requests cpu %q memory %q, want %q %q", gotCPU, gotMem, tt.cpu, tt.mem)
			}
			a := res.Pod.Annotations
			if a[annotations.FargateSizeBefore] != tt.before || a[annotations.FargateSizeAfter] != tt.after {
				t.Errorf("sizes %q -> %q, want %q -> %q", a[annotations.FargateSizeBefore], a[annotations.FargateSizeAfter], tt.before, tt.after)
			}
			joined := strings.Join(res.Warnings, "\n")
			if (tt.warn == "") != (joined == "") || !strings.Contains(joined, tt.warn) {
				t.Errorf("warnings %q, want %q", joined, tt.warn)
			}
		})
	}
}

func TestPodLevelResources(t *testing.T) {
	pod := fargatePod("900m", "900Mi", nil)
	pod.Spec.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("950m"), corev1.ResourceMemory: resource.MustParse("940Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("200Mi")},
	}
	res := mutateChecked(t, pod, DefaultConfig(), nil)
	c := collectorOf(t, res.Pod)
	// Requests fitted into what the pod-level requests leave: 50m and 40Mi,
	// the latter under the floor, so a warning; the limit lowered to the pod's.
	if c.Resources.Requests.Cpu().String() != "50m" || c.Resources.Requests.Memory().String() != "40Mi" || c.Resources.Limits.Memory().String() != "200Mi" {
		t.Fatalf("collector resources %+v", c.Resources)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "pod-level memory request (940Mi) leaves the collector only 40Mi") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	var gomem string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomem = e.Value
		}
	}
	if gomem != "160MiB" {
		t.Fatalf("GOMEMLIMIT %q, want 80%% of 200Mi", gomem)
	}
}

func TestLogsDisabled(t *testing.T) {
	res := mutateChecked(t, fargatePod("", "", map[string]string{annotations.Logs: "disabled"}), DefaultConfig(), nil)
	p := res.Pod
	if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].Name != CollectorContainerName {
		t.Fatalf("init containers: %v", p.Spec.InitContainers)
	}
	if p.Spec.Containers[0].Command[0] != "/app" || len(p.Spec.Containers[0].VolumeMounts) != 0 {
		t.Fatal("app wrapped or mounted with logs off")
	}
	var vols []string
	for _, v := range p.Spec.Volumes {
		vols = append(vols, v.Name)
	}
	if !slices.Equal(vols, []string{LogsVolumeName, ProxyTokenVolume}) {
		t.Fatalf("volumes %v: only the state volume and the token", vols)
	}
	if res.Status.OTLPEnv[0] != "app" {
		t.Fatal("OTLP env must still be set")
	}
}

func TestNoNativeSidecars(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NativeSidecars = false
	res := mutateChecked(t, fargatePod("", "", nil), cfg, nil)
	cs := res.Pod.Spec.Containers
	if cs[0].Name != "app" || cs[len(cs)-1].Name != CollectorContainerName || cs[len(cs)-1].RestartPolicy != nil {
		t.Fatalf("the collector must be appended as a regular container")
	}
	if res.Status.Collector != "container" {
		t.Fatal(res.Status.Collector)
	}
}

func TestProxyTokenOnlyInTheCollector(t *testing.T) {
	res := mutateChecked(t, fargatePod("", "", nil), DefaultConfig(), nil)
	visit(res.Pod, func(c *corev1.Container, _ bool) {
		for _, m := range c.VolumeMounts {
			if m.Name == ProxyTokenVolume && c.Name != CollectorContainerName {
				t.Fatalf("container %s mounts the proxy token", c.Name)
			}
		}
	})
	var v *corev1.Volume
	for i := range res.Pod.Spec.Volumes {
		if res.Pod.Spec.Volumes[i].Name == ProxyTokenVolume {
			v = &res.Pod.Spec.Volumes[i]
		}
	}
	tok := v.Projected.Sources[0].ServiceAccountToken
	if tok.Audience != "fargate-otel-nodeproxy" || *tok.ExpirationSeconds != 3600 || tok.Path != "token" {
		t.Fatalf("token %+v", tok)
	}
	// Metrics off: no token at all.
	res = mutateChecked(t, fargatePod("", "", map[string]string{annotations.Metrics: "disabled"}), DefaultConfig(), nil)
	for _, v := range res.Pod.Spec.Volumes {
		if v.Name == ProxyTokenVolume {
			t.Fatal("a token although metrics are off")
		}
	}
}

func TestWarningsAreOneLine(t *testing.T) {
	res := mutateChecked(t, fargatePod("", "", map[string]string{annotations.Containers: "nope", annotations.Command: "[\n"}),
		DefaultConfig(), Images{"img": {Err: errJSON("multi\nline\nerror")}})
	if len(res.Warnings) < 2 {
		t.Fatalf("warnings %q", res.Warnings)
	}
	for _, w := range res.Warnings {
		if strings.ContainsAny(w, "\n\r") || !strings.HasPrefix(w, "fargate-otel: ") {
			t.Fatalf("warning %q", w)
		}
	}
}

type errJSON string

func (e errJSON) Error() string { return string(e) }

func TestStatusAnnotation(t *testing.T) {
	res := mutateChecked(t, fargatePod("", "", nil), DefaultConfig(), nil)
	var st map[string]any
	if err := json.Unmarshal([]byte(res.Pod.Annotations[annotations.Status]), &st); err != nil {
		t.Fatal(err)
	}
	if st["version"] != float64(StatusVersion) || st["collector"] != "native-sidecar" || st["kubeletStats"] != "proxy" {
		t.Fatalf("status %v", st)
	}
	// Another config on the second pass still changes nothing.
	cfg := DefaultConfig()
	cfg.NativeSidecars = false
	cfg.KubeletStats.Mode = KubeletStatsOff
	if again := Mutate(res.Pod, cfg, nil); again.Injected || again.Skip != SkipAlreadyInjected {
		t.Fatal("an injected pod was injected again")
	}
}

// TestConcurrentMutate: the webhook calls Mutate from many goroutines; the
// render memo must give each the same, correct config (run with -race).
func TestConcurrentMutate(t *testing.T) {
	want := mustJSON(t, Mutate(fargatePod("", "", nil), DefaultConfig(), nil).Pod)
	errs := make(chan string, 16)
	for i := 0; i < 16; i++ {
		go func(i int) {
			cfg := DefaultConfig()
			if i%2 == 1 {
				cfg.ClusterName = "other"
			}
			for j := 0; j < 50; j++ {
				got := mustJSON(t, Mutate(fargatePod("", "", nil), cfg, nil).Pod)
				if (i%2 == 0) != (got == want) {
					errs <- "a result differs from the sequential one"
					return
				}
			}
			errs <- ""
		}(i)
	}
	for i := 0; i < 16; i++ {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
}
