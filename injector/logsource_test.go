package injector

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// checkLogSources: the status names a log source for every captured
// container and agrees with the pod; the follower is there exactly when a
// container has the api source, as a native sidecar right after the
// collector, following exactly those containers with the node proxy's
// token and CA, which no app container mounts.
func checkLogSources(t testing.TB, res Result, cfg Config) {
	t.Helper()
	st := res.Status
	followed := st.Followed()
	for _, name := range st.Containers {
		if st.LogSources[name] != LogSourceWrap {
			t.Fatalf("wrapped container %s has log source %q", name, st.LogSources[name])
		}
	}
	for _, name := range st.Unwrapped {
		if src := st.LogSources[name]; src != LogSourceAPI && src != LogSourceNone {
			t.Fatalf("unwrapped container %s has log source %q", name, src)
		}
	}
	if len(st.LogSources) != len(st.Containers)+len(st.Unwrapped) {
		t.Fatalf("log sources %v for containers %v and unwrapped %v", st.LogSources, st.Containers, st.Unwrapped)
	}
	if len(st.NotCaptured())+len(followed) != len(st.Unwrapped) {
		t.Fatalf("not captured %v and followed %v do not make unwrapped %v", st.NotCaptured(), followed, st.Unwrapped)
	}

	pod := res.Pod
	var follower *corev1.Container
	for i, c := range pod.Spec.InitContainers {
		if c.Name != FollowerContainerName {
			continue
		}
		if follower != nil {
			t.Fatalf("two followers")
		}
		follower = &pod.Spec.InitContainers[i]
		if i == 0 || pod.Spec.InitContainers[i-1].Name != CollectorContainerName {
			t.Fatalf("the follower is not right after the collector")
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == FollowerContainerName {
			t.Fatalf("the follower is a regular container")
		}
	}
	if len(followed) == 0 {
		if follower != nil {
			t.Fatalf("a follower without containers of log source api")
		}
		return
	}
	if !cfg.NativeSidecars || follower == nil {
		t.Fatalf("containers %v of log source api, native sidecars %v, follower %v", followed, cfg.NativeSidecars, follower != nil)
	}
	if follower.RestartPolicy == nil || *follower.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("the follower is not a native sidecar")
	}
	if want := "--containers=" + strings.Join(followed, ","); !slices.Contains(follower.Command, want) {
		t.Fatalf("follower command %q, want %s", follower.Command, want)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range follower.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts[LogsVolumeName]; m.MountPath != CollectorLogDir || m.ReadOnly {
		t.Fatalf("the follower mounts the logs volume as %+v", m)
	}
	if m := mounts[ProxyTokenVolume]; m.MountPath != ServiceAccountMount || !m.ReadOnly {
		t.Fatalf("the follower mounts the token as %+v", m)
	}
	var token *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == ProxyTokenVolume {
			if token != nil {
				t.Fatalf("two token volumes")
			}
			token = &pod.Spec.Volumes[i]
		}
	}
	if token == nil || token.Projected == nil || token.Projected.Sources[0].ServiceAccountToken.Audience != cfg.KubeletStats.NodeProxy.Audience {
		t.Fatalf("the token volume %+v", token)
	}
	visit(pod, func(c *corev1.Container, _ bool) {
		if c.Name == FollowerContainerName || c.Name == CollectorContainerName {
			return
		}
		for _, m := range c.VolumeMounts {
			if m.Name == ProxyTokenVolume {
				t.Fatalf("container %s mounts the node proxy's token", c.Name)
			}
		}
		if slices.Contains(followed, c.Name) && len(c.Command) > 0 && c.Command[0] == TeePath {
			t.Fatalf("container %s is followed and wrapped", c.Name)
		}
	})
}

// sourcePod has a container with a command (web), one without (worker)
// and one that already mounts our logs path (legacy).
func sourcePod(ann map[string]string) *corev1.Pod {
	pod := fargatePod("", "", ann)
	pod.Spec.Containers = []corev1.Container{
		{Name: "web", Image: "img/web:1", Command: []string{"/web"}},
		{Name: "worker", Image: "img/worker:1"},
		{Name: "legacy", Image: "img/legacy:1", Command: []string{"/legacy"}, VolumeMounts: []corev1.VolumeMount{{Name: "own", MountPath: LogDir}}},
	}
	pod.Spec.Volumes = []corev1.Volume{{Name: "own"}}
	return pod
}

func TestLogSources(t *testing.T) {
	failed := Images{"img/worker:1": {Err: errors.New("GET https://img/v2/worker/manifests/1: unexpected status code 500 Internal Server Error")}}
	resolved := Images{"img/worker:1": {Config: &ImageConfig{Entrypoint: []string{"/worker"}}}}
	tests := []struct {
		name   string
		ann    map[string]string
		cfg    func(*Config)
		images Images
		want   map[string]LogSource
		warns  []string // substrings, each in some warning
	}{
		{name: "auto: wrap what has a command, follow the rest", images: failed,
			want: map[string]LogSource{"web": "wrap", "worker": "api", "legacy": "api"},
			warns: []string{"container worker is not wrapped: reading the entrypoint of image img/worker:1 failed (GET https://img/v2/worker/manifests/1: unexpected status code 500 Internal Server Error); set command in the pod spec or the annotation fargate-otel.io/command; meanwhile its logs are read from the kubelet (log source api: stdout and stderr merged, as stdout)",
				"container legacy is not wrapped: it already mounts /fargate-otel/logs; meanwhile its logs are read from the kubelet"}},
		{name: "auto: not looked up (offline) is followed too",
			want:  map[string]LogSource{"web": "wrap", "worker": "api", "legacy": "api"},
			warns: []string{"container worker is not wrapped: it has no command and the entrypoint of image img/worker:1 was not looked up"}},
		{name: "auto: a resolved entrypoint is wrapped", images: resolved,
			want: map[string]LogSource{"web": "wrap", "worker": "wrap", "legacy": "api"}},
		{name: "forced api follows a container with a command", ann: map[string]string{annotations.LogSource: "api"}, images: resolved,
			want: map[string]LogSource{"web": "api", "worker": "api", "legacy": "api"}},
		{name: "per container", ann: map[string]string{annotations.LogSource: "web=api,*=wrap"}, images: failed,
			want:  map[string]LogSource{"web": "api", "worker": "none", "legacy": "none"},
			warns: []string{"container worker is not captured: reading the entrypoint of image img/worker:1 failed", "(annotation fargate-otel.io/log-source forces wrap)"}},
		{name: "mode direct: no node proxy", images: failed, cfg: func(c *Config) { c.KubeletStats.Mode = KubeletStatsDirect },
			want:  map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"set command in the pod spec or the annotation fargate-otel.io/command (the api log source reads through the node proxy, and the namespace's kubelet stats mode is direct, not proxy)"}},
		{name: "a namespace in mode off", images: failed, cfg: func(c *Config) {
			c.Namespace.Labels = map[string]string{annotations.KubeletStats: "off"}
		}, want: map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"the namespace's kubelet stats mode is off, not proxy"}},
		{name: "no node proxy at all", images: failed, cfg: func(c *Config) {
			c.KubeletStats.Mode, c.KubeletStats.AllowedModes = KubeletStatsOff, nil
		}, want: map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"which this injector does not run (kubeletStats.allowedModes has no proxy)"}},
		{name: "the node proxy's CA not in the namespace", images: failed, cfg: func(c *Config) { c.Namespace.NodeProxyCA = Missing },
			want:  map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"the api log source needs the node proxy's CA (ConfigMap fargate-otel-nodeproxy-ca), which is not in the namespace yet"}},
		{name: "no native sidecars", images: failed, cfg: func(c *Config) { c.NativeSidecars = false },
			want:  map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"(the api log source needs native sidecars (Kubernetes >= 1.29))"}},
		{name: "turned off", images: failed, cfg: func(c *Config) { c.Follower.Enabled = false },
			want:  map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"turned off in the injector's configuration (follower.enabled)"}},
		{name: "forced api where it cannot work: wrapped instead", ann: map[string]string{annotations.LogSource: "api"}, images: failed,
			cfg:  func(c *Config) { c.NativeSidecars = false },
			want: map[string]LogSource{"web": "wrap", "worker": "none", "legacy": "none"},
			warns: []string{"annotation fargate-otel.io/log-source asks for log source api for container web, but the api log source needs native sidecars (Kubernetes >= 1.29); it is wrapped instead",
				"container worker is not captured: reading the entrypoint of image img/worker:1 failed (GET https://img/v2/worker/manifests/1: unexpected status code 500 Internal Server Error); set command in the pod spec or the annotation fargate-otel.io/command; annotation fargate-otel.io/log-source asks for log source api, but the api log source needs native sidecars"}},
		{name: "logs off: no source", ann: map[string]string{annotations.Logs: "disabled", annotations.LogSource: "api"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			res := mutateChecked(t, sourcePod(tt.ann), cfg, tt.images)
			if !res.Injected {
				t.Fatalf("not injected: %s %q", res.Skip, res.Warnings)
			}
			if !mapsEqual(res.Status.LogSources, tt.want) {
				t.Errorf("log sources %v, want %v", res.Status.LogSources, tt.want)
			}
			for _, w := range tt.warns {
				if !slices.ContainsFunc(res.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("no warning contains %q:\n%s", w, strings.Join(res.Warnings, "\n"))
				}
			}
			var notCaptured []string
			for _, name := range []string{"web", "worker", "legacy"} {
				if tt.want[name] == LogSourceNone {
					notCaptured = append(notCaptured, name)
				}
			}
			if got := res.Status.NotCaptured(); !slices.Equal(got, notCaptured) {
				t.Errorf("not captured %v, want %v", got, notCaptured)
			}
		})
	}
}

func mapsEqual(a, b map[string]LogSource) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The follower container as the e2e and the docs rely on it.
func TestFollowerContainer(t *testing.T) {
	pod := sourcePod(map[string]string{annotations.LogSource: "web=wrap,*=api"})
	grace := int64(60)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	res := mutateChecked(t, pod, DefaultConfig(), nil)
	var names []string
	for _, c := range res.Pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if want := []string{InitContainerName, CollectorContainerName, FollowerContainerName}; !slices.Equal(names, want) {
		t.Fatalf("init containers %v, want %v", names, want)
	}
	f := res.Pod.Spec.InitContainers[2]
	// Three captured containers share the volume's half: 128Mi / 3.
	want := []string{"/fargate-otel-tee", "follow", "--node-proxy=https://fargate-otel-nodeproxy.fargate-otel.svc",
		"--containers=worker,legacy", "--dir=/var/log/pods", "--max-size=10Mi", "--max-backups=5", "--budget=42Mi", "--drain-timeout=5s"}
	if !slices.Equal(f.Command, want) {
		t.Errorf("command\n%q, want\n%q", f.Command, want)
	}
	if web := res.Pod.Spec.Containers[0]; !slices.Contains(web.Command, "--budget=42Mi") {
		t.Errorf("the wrapper's budget is not the follower's: %q", web.Command)
	}
	if f.Image != DefaultConfig().Images.Tee {
		t.Errorf("image %s", f.Image)
	}
	env := map[string]string{}
	for _, e := range f.Env {
		env[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	for name, path := range map[string]string{"FARGATE_OTEL_NODE": "spec.nodeName", "FARGATE_OTEL_NAMESPACE": "metadata.namespace",
		"FARGATE_OTEL_POD": "metadata.name", "FARGATE_OTEL_POD_UID": "metadata.uid"} {
		if env[name] != path {
			t.Errorf("env %s from %q, want %s", name, env[name], path)
		}
	}
	if f.Resources.Requests.Memory().String() != "32Mi" || f.Resources.Limits.Memory().String() != "64Mi" {
		t.Errorf("resources %+v", f.Resources)
	}
	// A short grace period gives a short drain.
	grace = 3
	res = mutateChecked(t, pod, DefaultConfig(), nil)
	if f := res.Pod.Spec.InitContainers[2]; !slices.Contains(f.Command, "--drain-timeout=1s") {
		t.Errorf("grace 3s: %q", f.Command)
	}
}

// Without kubelet stats the follower still gets the node proxy's token,
// and the collector does not.
func TestFollowerWithoutMetrics(t *testing.T) {
	pod := sourcePod(map[string]string{annotations.Metrics: "disabled"})
	res := mutateChecked(t, pod, DefaultConfig(), nil)
	if got := res.Status.Followed(); !slices.Equal(got, []string{"worker", "legacy"}) {
		t.Fatalf("followed %v", got)
	}
	for _, m := range collectorOf(t, res.Pod).VolumeMounts {
		if m.Name == ProxyTokenVolume {
			t.Errorf("the collector mounts the token without kubelet stats")
		}
	}
	if !NeedsNodeProxyCA(pod, DefaultConfig()) {
		t.Errorf("the follower needs the CA, but NeedsNodeProxyCA says no")
	}
	allWrapped := fargatePod("", "", map[string]string{annotations.Metrics: "disabled"})
	if NeedsNodeProxyCA(allWrapped, DefaultConfig()) {
		t.Errorf("nothing to follow and no kubelet stats, but NeedsNodeProxyCA says yes")
	}
}

// A container forced to api is not looked up; one forced to wrap is.
func TestImagesToResolveSkipsFollowed(t *testing.T) {
	pod := sourcePod(map[string]string{annotations.LogSource: "worker=api"})
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "other", Image: "img/other:1"})
	var got []string
	for _, r := range ImagesToResolve(pod, DefaultConfig()) {
		got = append(got, r.Container)
	}
	if !slices.Equal(got, []string{"other"}) {
		t.Fatalf("look-ups for %v, want [other]", got)
	}
	cfg := DefaultConfig()
	cfg.NativeSidecars = false
	got = nil
	for _, r := range ImagesToResolve(pod, cfg) {
		got = append(got, r.Container)
	}
	if !slices.Equal(got, []string{"worker", "other"}) {
		t.Fatalf("without native sidecars (api unavailable): look-ups for %v, want [worker other]", got)
	}
}

// The follower counts in the pod's Fargate size and fits LimitRanges.
func TestFollowerSizing(t *testing.T) {
	pod := sourcePod(nil)
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("200Mi")}
	cfg := DefaultConfig()
	cfg.FargateSizing = "fixed"
	res := mutateChecked(t, pod, cfg, nil)
	// 200 + collector 128 + follower 32 + 256 = 616 MiB: 1 GB.
	if got := res.Pod.Annotations[annotations.FargateSizeAfter]; got != "0.25vCPU 1GB" {
		t.Errorf("size after %s", got)
	}
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1650Mi")}
	// 1650 + 128 + 256 = 2034 fits 2 GB without the follower, 2066 with it.
	res = mutateChecked(t, pod, cfg, nil)
	if got := res.Pod.Annotations[annotations.FargateSizeAfter]; got != "0.5vCPU 3GB" {
		t.Errorf("with the follower's request the pod must cross to 3 GB, got %s", got)
	}

	lr := corev1.LimitRange{}
	lr.Name = "small"
	lr.Spec.Limits = []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
		Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("48Mi")}}}
	cfg = DefaultConfig()
	cfg.Namespace.LimitRanges = []corev1.LimitRange{lr}
	res = Mutate(sourcePod(nil), cfg, nil)
	if res.Skip != SkipLimitRange {
		t.Fatalf("a 48Mi container limit: skip %q (the collector needs 64Mi)", res.Skip)
	}
	lr.Spec.Limits[0].Max = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Mi")}
	cfg.Namespace.LimitRanges = []corev1.LimitRange{lr}
	res = mutateChecked(t, sourcePod(nil), cfg, nil)
	for _, c := range res.Pod.Spec.InitContainers {
		if c.Name == FollowerContainerName && c.Resources.Limits.Memory().String() != "64Mi" {
			t.Errorf("follower limit %s under a 100Mi max", c.Resources.Limits.Memory())
		}
	}
}

// In fit mode the follower's requests give way first (the collector's
// floors are kept for it); with pod-level requests they fit what is left.
func TestFollowerFit(t *testing.T) {
	follower := func(res Result) corev1.Container {
		for _, c := range res.Pod.Spec.InitContainers {
			if c.Name == FollowerContainerName {
				return c
			}
		}
		t.Fatal("no follower")
		return corev1.Container{}
	}
	// Half a vCPU taken by the app: no CPU request for the follower, or
	// its 10m would cross to 1 vCPU.
	pod := sourcePod(nil)
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	res := mutateChecked(t, pod, DefaultConfig(), nil)
	if f := follower(res); !f.Resources.Requests.Cpu().IsZero() || f.Resources.Requests.Memory().String() != "32Mi" {
		t.Errorf("follower requests %v", f.Resources.Requests)
	}
	if a, b := res.Pod.Annotations[annotations.FargateSizeBefore], res.Pod.Annotations[annotations.FargateSizeAfter]; a != b {
		t.Errorf("size %s -> %s", a, b)
	}
	// 240Mi + 256Mi leave 16Mi of 0.5 GB: the follower gets its floor.
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("240Mi")}
	res = mutateChecked(t, pod, DefaultConfig(), nil)
	if f := follower(res); f.Resources.Requests.Memory().String() != "16Mi" {
		t.Errorf("follower requests %v", f.Resources.Requests)
	}
	// Pod-level requests: the containers' sum stays within them.
	pod = sourcePod(nil)
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("200Mi")}
	pod.Spec.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("300Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("48Mi")},
	}
	res = mutateChecked(t, pod, DefaultConfig(), nil)
	var sum resource.Quantity
	visit(res.Pod, func(c *corev1.Container, _ bool) {
		if c.Name != InitContainerName {
			sum.Add(*c.Resources.Requests.Memory())
		}
	})
	if sum.Cmp(resource.MustParse("300Mi")) > 0 {
		t.Errorf("the containers request %s, above the pod's 300Mi", sum.String())
	}
	if f := follower(res); f.Resources.Limits.Memory().String() != "48Mi" || f.Resources.Requests.Memory().String() != "32Mi" {
		t.Errorf("follower resources %+v under the pod's limit of 48Mi", f.Resources)
	}
}
