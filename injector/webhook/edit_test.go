package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEditPatchOnOtherEdits: the edit patch is a walk of two typed pods,
// not a list of what Mutate happens to do today. Whatever the change, its
// patch applied to the raw bytes gives the changed pod and keeps what our
// types do not know; a change it cannot express as edits (a removal, a
// reorder) is replaced whole when raw allows, else left to the exact patch.
func TestEditPatchOnOtherEdits(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "apps",
				Labels:      map[string]string{"app": "web"},
				Annotations: map[string]string{"team": "a"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "mesh", Image: "mesh:1"}},
				Containers: []corev1.Container{
					{Name: "app", Image: "app:1", Command: []string{"/app"}, Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}},
					{Name: "worker", Image: "app:1"},
				},
				Volumes:     []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
			},
		}
	}
	unknownInApp := unknown{path: []string{"spec", "containers", "container:app", "futureField"}, value: "kept"}
	unknownInMesh := unknown{path: []string{"spec", "initContainers", "container:mesh", "futureField"}, value: "kept"}
	cases := []struct {
		name     string
		edit     func(p *corev1.Pod)
		unknowns []unknown
		edits    bool     // the edit patch is expected (else the exact one)
		ops      []string // operations expected, "op path", when edits
	}{
		{name: "labels changed and added", edits: true,
			edit: func(p *corev1.Pod) { p.Labels["app"] = "api"; p.Labels["tier"] = "1" },
			ops:  []string{"add /metadata/labels/app", "add /metadata/labels/tier"}},
		{name: "annotation key to escape", edits: true,
			edit: func(p *corev1.Pod) { p.Annotations[`x.io/a"b~ü`] = "v" },
			ops:  []string{`add /metadata/annotations/x.io~1a"b~0ü`}},
		{name: "image of a container with an unknown field", edits: true, unknowns: []unknown{unknownInApp},
			edit: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "app:2" },
			ops:  []string{"add /spec/containers/0/image"}},
		{name: "init container prepended before one with an unknown field", edits: true, unknowns: []unknown{unknownInMesh},
			edit: func(p *corev1.Pod) {
				p.Spec.InitContainers = append([]corev1.Container{{Name: "first"}, {Name: "second"}}, p.Spec.InitContainers...)
			},
			ops: []string{"add /spec/initContainers/0", "add /spec/initContainers/1"}},
		{name: "env var removed: the list replaced whole", edits: true, unknowns: []unknown{unknownInApp},
			edit: func(p *corev1.Pod) { p.Spec.Containers[0].Env = p.Spec.Containers[0].Env[1:] },
			ops:  []string{"add /spec/containers/0/env"}},
		{name: "toleration appended: a list without keys, replaced whole", edits: true,
			edit: func(p *corev1.Pod) {
				p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "j", Operator: corev1.TolerationOpExists})
			},
			ops: []string{"add /spec/tolerations"}},
		{name: "containers reordered", edits: true,
			edit: func(p *corev1.Pod) {
				p.Spec.Containers[0], p.Spec.Containers[1] = p.Spec.Containers[1], p.Spec.Containers[0]
			},
			ops: []string{"add /spec/containers"}},
		{name: "containers reordered, one with an unknown field", edits: false, unknowns: []unknown{unknownInApp},
			edit: func(p *corev1.Pod) {
				p.Spec.Containers[0], p.Spec.Containers[1] = p.Spec.Containers[1], p.Spec.Containers[0]
			}},
		{name: "annotation removed", edits: true,
			edit: func(p *corev1.Pod) { delete(p.Annotations, "team") },
			ops:  []string{"remove /metadata/annotations"}},
		{name: "volume appended, first env var of a container", edits: true,
			edit: func(p *corev1.Pod) {
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "v2"})
				p.Spec.Containers[1].Env = append(p.Spec.Containers[1].Env, corev1.EnvVar{Name: "C"})
			},
			ops: []string{"add /spec/volumes/-", "add /spec/containers/1/env"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			original := base()
			mutated := original.DeepCopy()
			tc.edit(mutated)
			var doc map[string]any
			if err := json.Unmarshal(mustMarshal(t, original), &doc); err != nil {
				t.Fatal(err)
			}
			for _, u := range tc.unknowns {
				set(t, doc, u.path, u.value)
			}
			raw := mustMarshal(t, doc)

			patch, ok, err := editPatch(raw, original, mutated)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.edits {
				t.Fatalf("edit patch used: %v, want %v (%s)", ok, tc.edits, patch)
			}
			if ok {
				var ops []struct{ Op, Path string }
				if err := json.Unmarshal(patch, &ops); err != nil {
					t.Fatalf("%v: %s", err, patch)
				}
				var got []string
				for _, o := range ops {
					got = append(got, o.Op+" "+o.Path)
				}
				if strings.Join(got, "\n") != strings.Join(tc.ops, "\n") {
					t.Errorf("operations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.ops, "\n"))
				}
			}
			resp, err := patchResponse(raw, original, mutated)
			if err != nil {
				t.Fatal(err)
			}
			if patch = resp.Patch; patch == nil {
				patch = mustMarshal(t, resp.Patches)
			}
			p, err := jsonpatch.DecodePatch(patch)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Apply(raw)
			if err != nil {
				t.Fatalf("apply: %v\n%s", err, patch)
			}
			var got corev1.Pod
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(&got, mutated) {
				t.Fatalf("patched pod is not the changed one:\n got %s\nwant %s", mustMarshal(t, &got), mustMarshal(t, mutated))
			}
			var outDoc map[string]any
			if err := json.Unmarshal(out, &outDoc); err != nil {
				t.Fatal(err)
			}
			for _, u := range tc.unknowns {
				if v := get(outDoc, u.path); fmt.Sprint(v) != fmt.Sprint(u.value) {
					t.Errorf("%v: %v, want %v (kept where it was)", u.path, v, u.value)
				}
			}
		})
	}
}
