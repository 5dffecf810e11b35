package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
)

// TestPatchResponse: whichever way the patch is made, applied to the bytes
// the API server sent it gives Mutate's pod, and keeps what our types do
// not know where it was. The cheap section patch is used exactly when it is
// safe.
func TestPatchResponse(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	base := func() *corev1.Pod {
		return &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "apps",
				Labels:      map[string]string{injector.FargateProfileLabel: "fp"},
				Annotations: map[string]string{"team": "a&b <c>"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "r.example.com/app:1", Command: []string{"/app"},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
			}}},
		}
	}
	withSidecar := func() *corev1.Pod {
		p := base()
		p.Spec.InitContainers = []corev1.Container{{Name: "mesh", Image: "r.example.com/mesh:1", Command: []string{"/mesh"}, RestartPolicy: &always}}
		return p
	}
	cases := []struct {
		name     string
		pod      *corev1.Pod
		unknowns []unknown
		edits    bool // the edit patch is expected (else the exact one)
		rawEdit  func([]byte) []byte
	}{
		{name: "plain pod", pod: base(), edits: true},
		{name: "native sidecar shifted by the injected init containers", pod: withSidecar(), edits: true},
		{name: "unknown spec field, untouched member", pod: base(), edits: true,
			unknowns: []unknown{{path: []string{"spec", "fieldFromTheFuture"}, value: map[string]any{"on": true}}}},
		{name: "unknown metadata field", pod: base(), edits: true,
			unknowns: []unknown{{path: []string{"metadata", "futureMeta"}, value: "x"}}},
		{name: "unknown field in a container that is rewritten", pod: base(), edits: true,
			unknowns: []unknown{{path: []string{"spec", "containers", "container:app", "futureField"}, value: "kept"}}},
		{name: "unknown field in a shifted init container", pod: withSidecar(), edits: true,
			unknowns: []unknown{{path: []string{"spec", "initContainers", "container:mesh", "futureField"}, value: 42.0}}},
		{name: "unknown top-level field", pod: base(), edits: true,
			unknowns: []unknown{{path: []string{"futureTop"}, value: []any{"a"}}}},
		{name: "annotations absent", pod: func() *corev1.Pod { p := base(); p.Annotations = nil; return p }(), edits: true},
		{name: "escaped keys in a rewritten container: replaced whole", pod: base(), edits: true,
			rawEdit: func(raw []byte) []byte { return bytes.Replace(raw, []byte(`"image":`), []byte(`"im\u0061ge":`), 1) }},
		{name: "escaped keys and an unknown field in a rewritten container", pod: base(), edits: false,
			unknowns: []unknown{{path: []string{"spec", "containers", "container:app", "futureField"}, value: "kept"}},
			rawEdit:  func(raw []byte) []byte { return bytes.Replace(raw, []byte(`"image":`), []byte(`"im\u0061ge":`), 1) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := injector.Mutate(tc.pod, injector.DefaultConfig(), nil)
			if !res.Injected {
				t.Fatalf("not injected: %v", res.Warnings)
			}
			var doc map[string]any
			if err := json.Unmarshal(mustMarshal(t, tc.pod), &doc); err != nil {
				t.Fatal(err)
			}
			for _, u := range tc.unknowns {
				set(t, doc, u.path, u.value)
			}
			raw := mustMarshal(t, doc)
			if tc.rawEdit != nil {
				edited := tc.rawEdit(raw)
				if bytes.Equal(edited, raw) {
					t.Fatal("rawEdit changed nothing")
				}
				raw = edited
			}

			_, ok, err := editPatch(raw, tc.pod, res.Pod)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.edits {
				t.Errorf("edit patch used: %v, want %v", ok, tc.edits)
			}
			resp, err := patchResponse(raw, tc.pod, res.Pod)
			if err != nil {
				t.Fatal(err)
			}
			patch := resp.Patch
			if patch == nil {
				if patch, err = json.Marshal(resp.Patches); err != nil {
					t.Fatal(err)
				}
			}
			var ops []struct{ Op, Path string }
			if err := json.Unmarshal(patch, &ops); err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				if op.Op == "remove" {
					t.Errorf("patch removes %s", op.Path)
				}
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
			if !apiequality.Semantic.DeepEqual(&got, res.Pod) {
				t.Fatalf("patched pod is not Mutate's:\n got %s\nwant %s", mustMarshal(t, &got), mustMarshal(t, res.Pod))
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

func TestMembersEncodeLikeTheirStruct(t *testing.T) {
	res := injector.Mutate(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{injector.FargateProfileLabel: "fp"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "i", Command: []string{"/app"}}}},
	}, injector.DefaultConfig(), nil)
	for _, sec := range []struct {
		v       any
		members []member
	}{{&res.Pod.ObjectMeta, objectMetaMembers}, {&res.Pod.Spec, podSpecMembers}} {
		var whole map[string]json.RawMessage
		if err := json.Unmarshal(mustMarshal(t, sec.v), &whole); err != nil {
			t.Fatal(err)
		}
		rv := reflect.ValueOf(sec.v).Elem()
		seen := 0
		for _, m := range sec.members {
			var enc []byte
			if f := rv.Field(m.index); !m.omitted(f) {
				enc = mustMarshal(t, jsonValue(f))
			}
			want, present := whole[m.name]
			if present != (enc != nil) || (present && string(want) != string(enc)) {
				t.Errorf("member %s: %s, want %s (present %v)", m.name, enc, want, present)
			}
			if present {
				seen++
			}
		}
		if seen != len(whole) {
			t.Errorf("members cover %d of %d encoded fields", seen, len(whole))
		}
	}
}

// unknown is a field our types do not know, put into the raw pod.
type unknown struct {
	path  []string // object keys from the root; "container:NAME" picks a container by name
	value any
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// step walks one path element: an object key, or "container:NAME" in a list.
func step(cur any, key string) (any, bool) {
	if name, ok := strings.CutPrefix(key, "container:"); ok {
		list, _ := cur.([]any)
		for _, c := range list {
			if m, _ := c.(map[string]any); m != nil && m["name"] == name {
				return m, true
			}
		}
		return nil, false
	}
	m, _ := cur.(map[string]any)
	v, ok := m[key]
	return v, ok
}

func set(t *testing.T, doc map[string]any, path []string, value any) {
	t.Helper()
	parent := any(doc)
	for _, k := range path[:len(path)-1] {
		next, ok := step(parent, k)
		if !ok {
			t.Fatalf("no %s in %v", k, path)
		}
		parent = next
	}
	parent.(map[string]any)[path[len(path)-1]] = value
}

func get(doc map[string]any, path []string) any {
	cur := any(doc)
	for _, k := range path {
		next, ok := step(cur, k)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// FuzzPatchResponse: for any pod the API server could send (seeded with the
// injector's test pods, as JSON), the patch applies to the very bytes and
// gives Mutate's pod, and never removes what Mutate did not.
func FuzzPatchResponse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "mutate", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.yaml") {
			continue
		}
		y, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
	}
	cfg := injector.DefaultConfig()
	cfg.Scope = injector.ScopeAll
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pod corev1.Pod
		if sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &pod) != nil {
			return // the handler fails open on this
		}
		var doc any
		if json.Unmarshal(raw, &doc) != nil {
			return
		}
		if _, isObject := doc.(map[string]any); !isObject {
			return
		}
		res := injector.Mutate(&pod, cfg, nil)
		if !res.Injected {
			return
		}
		resp, err := patchResponse(raw, &pod, res.Pod)
		if err != nil {
			return // the handler fails open on this; nothing to apply
		}
		patch := resp.Patch
		if patch == nil {
			if len(resp.Patches) == 0 {
				t.Fatal("injected, yet no patch")
			}
			if patch, err = json.Marshal(resp.Patches); err != nil {
				t.Fatal(err)
			}
		}
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("the patch does not apply to the pod it was made for: %v", err)
		}
		var got corev1.Pod
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(out, &got); err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(&got, res.Pod) {
			t.Fatalf("patched pod is not Mutate's:\n got %s\nwant %s", mustMarshal(t, &got), mustMarshal(t, res.Pod))
		}
	})
}

func TestJSONMembers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string // nil: not split
	}{
		{`{}`, map[string]string{}},
		{` { "a" : 1 , "b":"x,}]\"y" ,"c":[1,{"d":"}"}],"e":{"f":null},"g":true}`, map[string]string{
			"a": "1", "b": `"x,}]\"y"`, "c": `[1,{"d":"}"}]`, "e": `{"f":null}`, "g": "true"}},
		{`{"a":-1.5e3}`, map[string]string{"a": "-1.5e3"}},
		{`{"a\u0062":1}`, nil},
		{`{"a":1,"a":2}`, nil},
		{`[1]`, nil},
		{`null`, nil},
		{``, nil},
	} {
		got, ok := jsonMembers([]byte(tc.in))
		if (tc.want == nil) != !ok {
			t.Errorf("%s: split %v", tc.in, ok)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d members, want %d", tc.in, len(got), len(tc.want))
		}
		for k, v := range tc.want {
			if g, _ := got.get(k); string(g) != v {
				t.Errorf("%s: member %s = %s, want %s", tc.in, k, g, v)
			}
		}
	}
}

// FuzzJSONMembers: where the splitter splits, it agrees with a decoder.
func FuzzJSONMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[{"c":"}"}],"d":"\"x"}`, `{"metadata":{"name":"p"},"spec":{"containers":[]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		got, ok := jsonMembers(data)
		if !ok {
			return
		}
		var want map[string]json.RawMessage
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &want); err != nil {
			t.Fatalf("split what does not decode as an object: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, want %d", len(got), len(want))
		}
		for k, v := range want {
			if g, _ := got.get(k); !sameJSON(g, v) {
				t.Fatalf("member %q: %s, want %s", k, g, v)
			}
		}
	})
}

func TestJSONElements(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil: not split
	}{
		{`[]`, []string{}},
		{` [ ] `, []string{}},
		{`[1, "a,]\"", {"b":[1,2]} ,[{}],null,true]`, []string{"1", `"a,]\""`, `{"b":[1,2]}`, "[{}]", "null", "true"}},
		{`[-1.5e3]`, []string{"-1.5e3"}},
		{`{"a":1}`, nil},
		{`[1,]`, nil},
		{`[,1]`, nil},
		{`[1 2]`, nil},
		{`[1`, nil},
		{``, nil},
	} {
		got, ok := jsonElements([]byte(tc.in))
		if (tc.want == nil) != !ok {
			t.Errorf("%s: split %v", tc.in, ok)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d elements, want %d", tc.in, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("%s: element %d = %s, want %s", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

// FuzzJSONElements: where the splitter splits, it agrees with a decoder.
func FuzzJSONElements(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a\"]",{"b":"]"},[[]]]`, `[{"name":"app","env":[{"name":"A"}]}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		got, ok := jsonElements(data)
		if !ok {
			return
		}
		var want []json.RawMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("split what does not decode as an array: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d elements, want %d", len(got), len(want))
		}
		for i := range want {
			if !sameJSON(got[i], want[i]) {
				t.Fatalf("element %d: %s, want %s", i, got[i], want[i])
			}
		}
	})
}
