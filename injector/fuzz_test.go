package injector

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// randomPod builds a pod from fuzz input: every field random (randfill),
// then steered towards what the injector looks at, so that most inputs
// reach the interesting paths: Fargate markers, our annotations with good
// and bad values, containers with and without commands, colliding names
// and ports, init containers and native sidecars.
func randomPod(data []byte) (*corev1.Pod, Config, Images) {
	// A seed from the input rather than randfill.NewFromGoFuzz, which loops
	// forever filling maps once a short input is used up.
	h := fnv.New64a()
	_, _ = h.Write(data)
	seed := int64(h.Sum64())
	f := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).MaxDepth(8).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			switch c.Intn(4) {
			case 0:
				*q = *resource.NewMilliQuantity(c.Int63n(1<<40)-1000, resource.DecimalSI)
			case 1:
				*q = *resource.NewQuantity(c.Int63n(1<<40), resource.BinarySI)
			case 2:
				*q = resource.MustParse("250m")
			default:
				*q = resource.MustParse("512Mi")
			}
		},
		func(v *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*v = intstr.FromInt32(c.Int31())
			} else {
				*v = intstr.FromString(c.String(8))
			}
		},
		// managedFields hold raw JSON: random bytes would make pods that no
		// API server can send, so every generated pod stays expressible.
		func(v *metav1.FieldsV1, c randfill.Continue) {
			v.SetRawString(fmt.Sprintf(`{"f:metadata":{"f:labels":{"f:l%x":{}}}}`, c.Uint32()))
		},
	)
	var pod corev1.Pod
	f.Fill(&pod)
	r := rand.New(rand.NewSource(seed + 1))
	pick := func(opts ...string) string { return opts[r.Intn(len(opts))] }

	names := []string{"app", "worker", "sidecar", "init", InitContainerName, CollectorContainerName, FollowerContainerName}
	steer := func(cs []corev1.Container, init bool) {
		for i := range cs {
			c := &cs[i]
			c.Name = pick(names[:4]...)
			if r.Intn(20) == 0 {
				c.Name = pick(names...)
			}
			c.Image = pick("img/a:1", "img/b:1", "img/c:1")
			if r.Intn(2) == 0 {
				c.Command = nil
			}
			if r.Intn(3) == 0 {
				c.Args = nil
			}
			if r.Intn(3) == 0 {
				c.EnvFrom = nil
			}
			if r.Intn(10) == 0 {
				c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: int32(pick("4317", "4318", "13133")[0]-'0') + 4317})
			}
			c.RestartPolicy = nil
			if init && r.Intn(2) == 0 {
				c.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
			}
		}
	}
	steer(pod.Spec.InitContainers, true)
	steer(pod.Spec.Containers, false)
	if r.Intn(5) != 0 && len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "img/a:1"}}
	}
	if r.Intn(4) != 0 {
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[FargateProfileLabel] = "p"
	}
	if r.Intn(3) == 0 {
		pod.Spec.OS = nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	values := map[string][]string{
		annotations.Containers:         {"app", "app,worker", "nope", "init,sidecar", ""},
		annotations.SkipContainers:     {"worker", "x"},
		annotations.Command:            {`["/bin/x"]`, `{"app":["/a"],"worker":["/w"]}`, `{"app":[]}`, `not json`, `[]`},
		annotations.Logs:               {"disabled", "enabled", "maybe"},
		annotations.Metrics:            {"disabled", "enabled"},
		annotations.Traces:             {"disabled", "false"},
		annotations.LogFormat:          {"raw", "cri", "json"},
		annotations.LogMaxSize:         {"1Mi", "0", "-5Mi", "1e30", "abc"},
		annotations.LogMaxBackups:      {"0", "3", "-1", "9999"},
		annotations.LogsVolumeSize:     {"1Ki", "16Mi", "1Ti", "x"},
		annotations.Exporters:          {"team", "team/key.yaml", "Bad_Name"},
		annotations.CollectorResources: {`{"requests":{"cpu":"1","memory":"1Gi"},"limits":{"memory":"2Gi"}}`, `{"requests":{"memory":"1Gi"},"limits":{"memory":"1Mi"}}`, `{"limits":{"memory":"1Mi"}}`, `{}`, `[`},
		annotations.FargateSizing:      {"fit", "fixed", "loose"},
		annotations.Multiline:          {"java", "*=go,app=none", `app=regex:^\d{4}`, `{"worker":"regex:((","app":"python"}`, "cobol"},
		annotations.LogParser:          {"json", "app=logfmt,worker=regex:^(?P<x>.)", "regex:(", "xml", "nope=json"},
		annotations.LogSource:          {"api", "wrap", "auto", "app=api,*=wrap", "worker=api", "init=api", "kubelet"},
		annotations.LogRateLimit:       {"1000/s", "1000/s:5000 1Mi/s:4Mi", "app=10/s,*=none", "worker=1Ki/s", "0/s", "fast", "1/s 2/s"},
		annotations.Status:             {`{"version":1}`},
		annotations.Prefix + "typo":    {"1"},
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if vs := values[key]; r.Intn(5) == 0 {
			pod.Annotations[key] = vs[r.Intn(len(vs))]
		}
	}

	cfg := DefaultConfig()
	cfg.NativeSidecars = r.Intn(4) != 0
	cfg.KubeletStats.Mode = []KubeletStatsMode{KubeletStatsProxy, KubeletStatsProxy, KubeletStatsDirect, KubeletStatsOff}[r.Intn(4)]
	if r.Intn(3) == 0 {
		cfg.Scope = ScopeAll
	}
	if r.Intn(3) == 0 {
		cfg.FargateSizing = "fixed"
	}
	if r.Intn(3) == 0 {
		cfg.ReferencedExporters = &ReferencedExporters{
			Ref:  annotations.ConfigMapRef{Name: "team", Key: annotations.DefaultExportersKey},
			Data: pick("- id: debug\n", "- id: nope/x\n", "{", "- id: otlp_http/a\n  signals: [logs]\n"),
		}
		if r.Intn(3) == 0 {
			cfg.ReferencedExporters.Err = errors.New("configmaps \"team\" not found")
		}
	}
	if r.Intn(2) == 0 {
		cfg.KubeletStats.AllowedModes = append(cfg.KubeletStats.AllowedModes, KubeletStatsDirect)
	}
	if r.Intn(2) == 0 {
		cfg.Namespace.Labels = map[string]string{annotations.KubeletStats: pick("proxy", "direct", "off", "bogus")}
	}
	cfg.Namespace.NodeProxyCA = []Presence{PresenceUnknown, Present, Missing}[r.Intn(3)]
	cfg.Follower.Enabled = r.Intn(6) != 0
	if r.Intn(2) == 0 {
		cfg.Namespace.LimitRanges = randomLimitRanges(r)
	}
	images := Images{
		"img/a:1": {Config: &ImageConfig{Entrypoint: []string{"/a", "$(X)"}, Cmd: []string{"serve"}}},
		"img/b:1": {Err: errors.New("unauthorized")},
	}
	if r.Intn(4) == 0 {
		images["img/c:1"] = ImageLookup{Config: &ImageConfig{}}
	}
	return &pod, cfg, images
}

// randomLimitRanges are LimitRanges the API server would accept (min <=
// max, ratio >= 1), of type Container and Pod.
func randomLimitRanges(r *rand.Rand) []corev1.LimitRange {
	cpus := []string{"10m", "50m", "100m", "250m", "1", "4"}
	mems := []string{"16Mi", "64Mi", "128Mi", "256Mi", "1Gi"}
	ratios := []string{"1", "1500m", "2", "10"}
	var lrs []corev1.LimitRange
	for n := r.Intn(3); n >= 0; n-- {
		item := corev1.LimitRangeItem{Type: []corev1.LimitType{corev1.LimitTypeContainer, corev1.LimitTypePod}[r.Intn(2)]}
		set := func(list *corev1.ResourceList, name corev1.ResourceName, v string) {
			if *list == nil {
				*list = corev1.ResourceList{}
			}
			(*list)[name] = resource.MustParse(v)
		}
		for _, res := range []struct {
			name   corev1.ResourceName
			values []string
		}{{corev1.ResourceCPU, cpus}, {corev1.ResourceMemory, mems}} {
			lo := r.Intn(len(res.values))
			hi := lo + r.Intn(len(res.values)-lo)
			if r.Intn(2) == 0 {
				set(&item.Min, res.name, res.values[lo])
			}
			if r.Intn(2) == 0 {
				set(&item.Max, res.name, res.values[hi])
			}
			if r.Intn(3) == 0 {
				set(&item.MaxLimitRequestRatio, res.name, ratios[r.Intn(len(ratios))])
			}
		}
		lrs = append(lrs, corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{item}}})
		lrs[len(lrs)-1].Name = fmt.Sprintf("lr-%d", n)
	}
	return lrs
}

// containerItems keeps the items of type Container.
func containerItems(lrs []corev1.LimitRange) []corev1.LimitRange {
	var out []corev1.LimitRange
	for _, lr := range lrs {
		lr = *lr.DeepCopy()
		lr.Spec.Limits = slices.DeleteFunc(lr.Spec.Limits, func(i corev1.LimitRangeItem) bool { return i.Type != corev1.LimitTypeContainer })
		out = append(out, lr)
	}
	return out
}

// FuzzMutate: whatever the pod, Mutate does not panic, leaves its input
// alone, removes or reorders nothing of the user's, and is idempotent
// (checkInvariants); and ImagesToResolve agrees with Mutate about which
// containers lack a command.
func FuzzMutate(f *testing.F) {
	for i := 0; i < 64; i++ {
		seed := make([]byte, 64+i*16)
		r := rand.New(rand.NewSource(int64(i)))
		r.Read(seed)
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pod, cfg, images := randomPod(data)
		if _, err := json.Marshal(pod); err != nil {
			t.Fatalf("the generator made a pod JSON cannot express: %v", err)
		}
		res := mutateChecked(t, pod, cfg, images)
		reqs := ImagesToResolve(pod, cfg)
		if res.Injected {
			for _, req := range reqs {
				if _, ok := images[req.Image]; ok {
					continue
				}
				// An image nobody looked up leaves its container unwrapped.
				found := false
				for _, name := range res.Status.Unwrapped {
					found = found || name == req.Container
				}
				if !found {
					t.Fatalf("container %s needed a look-up of %s that was not given, yet it was wrapped", req.Container, req.Image)
				}
			}
		} else if len(reqs) > 0 && res.Skip != SkipLimitRange {
			// (LimitRanges are fitted once the pod is injected, after the
			// look-ups: a pod they refuse may have had images to resolve.)
			t.Fatalf("not injected (%s: %q), yet images to resolve: %v", res.Skip, res.Warnings, reqs)
		}
		// The injected containers pass LimitRanger's validation (the pod's
		// totals include the user's containers, which may fail on their own).
		if res.Injected {
			if err := limitRangerValidate(res.Pod, containerItems(cfg.Namespace.LimitRanges)); err != nil {
				t.Fatalf("LimitRanger would reject the injected containers: %v", err)
			}
		}
		for _, w := range res.Warnings {
			if len(w) > 1024 {
				t.Fatalf("warning too long (%d bytes): %.200s", len(w), w)
			}
		}
	})
}

// TestRandomPods runs the fuzz body over many generated pods in plain go
// test, so that the properties are checked on every run, not only when
// someone fuzzes.
func TestRandomPods(t *testing.T) {
	injected, followed := 0, 0
	for i := 0; i < 3000; i++ {
		r := rand.New(rand.NewSource(int64(i)))
		data := make([]byte, 32+r.Intn(512))
		r.Read(data)
		pod, cfg, images := randomPod(data)
		if _, err := json.Marshal(pod); err != nil {
			continue
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if res := mutateChecked(t, pod, cfg, images); res.Injected {
				injected++
				if len(res.Status.Followed()) > 0 {
					followed++
				}
			}
		})
	}
	// The generator must reach the injection path often, or the properties
	// above prove little.
	t.Logf("%d of 3000 random pods injected, %d with the follower", injected, followed)
	if injected < 300 || followed < 60 {
		t.Fatalf("only %d of 3000 random pods were injected, %d with the follower", injected, followed)
	}
}
