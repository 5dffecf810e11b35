package webhook

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/randfill"

	"github.com/fargate-otel/fargate-otel/injector"
)

// TestPatchOnRandomPods: random pods (every field filled at random, then
// steered so that most are injected), with fields our types do not know
// sprinkled in the containers, init containers, volumes, metadata and
// spec. The patch applied to the very bytes gives Mutate's pod, removes
// nothing, and keeps every unknown field.
func TestPatchOnRandomPods(t *testing.T) {
	var injected, edits int
	for seed := range int64(300) {
		pod, cfg := randomInjectablePod(seed)
		r := rand.New(rand.NewSource(seed))
		var doc map[string]any
		if err := json.Unmarshal(mustMarshal(t, pod), &doc); err != nil {
			t.Fatal(err)
		}
		unknowns := sprinkleUnknowns(r, doc)
		raw := mustMarshal(t, doc)

		var decoded corev1.Pod // as the handler decodes it
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &decoded); err != nil {
			t.Fatal(err)
		}
		res := injector.Mutate(&decoded, cfg, nil)
		if !res.Injected {
			continue
		}
		injected++
		if _, ok, _ := editPatch(raw, &decoded, res.Pod); ok {
			edits++
		}
		resp, err := patchResponse(raw, &decoded, res.Pod)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		patch := resp.Patch
		if patch == nil {
			patch = mustMarshal(t, resp.Patches)
		}
		var ops []struct{ Op, Path string }
		if err := json.Unmarshal(patch, &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Op == "remove" {
				t.Errorf("seed %d: the patch removes %s", seed, op.Path)
			}
		}
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("seed %d: apply: %v\n%s", seed, err, patch)
		}
		var got corev1.Pod
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(out, &got); err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(&got, res.Pod) {
			t.Fatalf("seed %d: patched pod is not Mutate's:\n got %s\nwant %s", seed, mustMarshal(t, &got), mustMarshal(t, res.Pod))
		}
		var outDoc map[string]any
		if err := json.Unmarshal(out, &outDoc); err != nil {
			t.Fatal(err)
		}
		if kept := sprinkleUnknowns(nil, outDoc); kept != unknowns {
			t.Fatalf("seed %d: %d unknown fields after the patch, %d before\n%s", seed, kept, unknowns, patch)
		}
	}
	t.Logf("%d of 300 random pods injected, %d by the edit patch", injected, edits)
	if injected < 150 || edits < injected/2 {
		t.Fatalf("too few random pods exercise the patch: %d injected, %d by edits", injected, edits)
	}
}

// randomInjectablePod is a random pod that Mutate mostly injects.
func randomInjectablePod(seed int64) (*corev1.Pod, injector.Config) {
	f := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).MaxDepth(6).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewMilliQuantity(c.Int63n(4000)+1, resource.DecimalSI)
		},
		func(v *intstr.IntOrString, c randfill.Continue) { *v = intstr.FromInt32(c.Int31n(60000) + 1) },
		func(v *metav1.FieldsV1, c randfill.Continue) { v.SetRawString(`{"f:spec":{}}`) },
		func(v *metav1.Time, c randfill.Continue) { *v = metav1.Unix(c.Int63n(1<<31), 0) },
		func(v *metav1.MicroTime, c randfill.Continue) {
			*v = metav1.NewMicroTime(metav1.Unix(c.Int63n(1<<31), 0).Time)
		},
	)
	var pod corev1.Pod
	f.Fill(&pod)
	r := rand.New(rand.NewSource(seed))
	steer := func(cs []corev1.Container, prefix string) {
		for i := range cs {
			c := &cs[i]
			c.Name = fmt.Sprintf("%s%d", prefix, i)
			c.Ports = nil
			c.VolumeMounts = nil
			c.RestartPolicy = nil
			if r.Intn(3) == 0 {
				c.Command = nil
			}
		}
	}
	steer(pod.Spec.InitContainers, "init")
	steer(pod.Spec.Containers, "app")
	if len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "img/a:1", Command: []string{"/a"}}}
	}
	for i := range pod.Spec.Volumes {
		pod.Spec.Volumes[i].Name = fmt.Sprintf("vol%d", i)
	}
	pod.Spec.EphemeralContainers = nil
	pod.Spec.OS = nil
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Annotations = nil
	if r.Intn(2) == 0 {
		pod.Annotations = map[string]string{"team": "a"}
	}
	pod.Spec.Resources = nil
	for _, c := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range c {
			c[i].Resources = corev1.ResourceRequirements{}
		}
	}
	cfg := injector.DefaultConfig()
	cfg.Scope = injector.ScopeAll
	cfg.NativeSidecars = r.Intn(4) != 0
	return &pod, cfg
}

// sprinkleUnknowns puts a field our types do not know into some of the
// pod's objects (r nil: none) and counts those the pod has.
func sprinkleUnknowns(r *rand.Rand, doc map[string]any) int {
	n := 0
	visit := func(obj any) {
		m, ok := obj.(map[string]any)
		if !ok {
			return
		}
		if r != nil && r.Intn(3) == 0 {
			m["fieldFromTheFuture"] = "kept"
		}
		if m["fieldFromTheFuture"] == "kept" {
			n++
		}
	}
	visit(doc)
	if md, ok := doc["metadata"]; ok {
		visit(md)
	}
	spec, _ := doc["spec"].(map[string]any)
	if spec == nil {
		return n
	}
	visit(spec)
	for _, list := range []string{"initContainers", "containers", "volumes"} {
		items, _ := spec[list].([]any)
		for _, item := range items {
			visit(item)
			if env, ok := item.(map[string]any)["env"].([]any); ok && len(env) > 0 {
				visit(env[0])
			}
		}
	}
	return n
}
