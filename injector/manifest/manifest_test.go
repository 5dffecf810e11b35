package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
)

func testConfig() injector.Config {
	cfg := injector.DefaultConfig()
	cfg.Scope = injector.ScopeAll
	return cfg
}

// TestWritesExactlyWhatMutateGives injects every pod of the injector's
// golden inputs, wrapped in a Deployment written in another style (flow
// sequences, comments, odd key order), and checks that the pod template in
// the output is exactly Mutate's result: merge loses nothing and adds
// nothing.
func TestWritesExactlyWhatMutateGives(t *testing.T) {
	noRewrites(t)
	files, _ := filepath.Glob("../testdata/mutate/*.yaml")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.yaml") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// As a Pod document.
			checkSame(t, data, func(out []byte) *corev1.PodTemplateSpec {
				var pod corev1.Pod
				strict(t, out, &pod)
				return &corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}
			})
			// As the template of a Deployment, indented and commented.
			var pod corev1.Pod
			strict(t, data, &pod)
			var buf bytes.Buffer
			buf.WriteString("# a deployment\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: " + pod.Namespace + "}\nspec:\n  selector: {matchLabels: {a: b}}\n  template: # the pod\n")
			for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
				if strings.HasPrefix(line, "apiVersion:") || strings.HasPrefix(line, "kind:") {
					continue
				}
				buf.WriteString("    " + line + "\n")
			}
			checkSame(t, buf.Bytes(), func(out []byte) *corev1.PodTemplateSpec {
				var d appsv1.Deployment
				strict(t, out, &d)
				if !bytes.Contains(out, []byte("# a deployment")) || !bytes.Contains(out, []byte("# the pod")) {
					t.Errorf("comments lost:\n%s", out)
				}
				return &d.Spec.Template
			})
		})
	}
	if n < 10 {
		t.Fatalf("only %d inputs", n)
	}
}

func checkSame(t *testing.T, input []byte, read func([]byte) *corev1.PodTemplateSpec) {
	t.Helper()
	out, objs, err := Inject(input, Options{Config: testConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects", len(objs))
	}
	o := objs[0]
	if !o.Injected {
		if !bytes.Equal(out, input) {
			t.Fatalf("not injected (%s) but the text changed", o.Skip)
		}
		return
	}
	got := read(out)
	want := corev1.PodTemplateSpec{ObjectMeta: o.Pod.ObjectMeta, Spec: o.Pod.Spec}
	want.Namespace = got.Namespace
	if a, b := mustJSON(t, got), mustJSON(t, want); a != b {
		t.Fatalf("the output's pod template differs from Mutate's result:\n got %s\nwant %s", a, b)
	}
	// A second pass changes nothing, byte for byte.
	again, objs2, err := Inject(out, Options{Config: testConfig()})
	if err != nil || !bytes.Equal(again, out) || objs2[0].Skip != injector.SkipAlreadyInjected {
		t.Fatalf("second pass changed the output (err %v, skip %q)", err, objs2[0].Skip)
	}
}

func strict(t *testing.T, data []byte, into any) {
	t.Helper()
	if err := sigsyaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOtherDocumentsByteForByte(t *testing.T) {
	input := "# leading comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}   # odd: spacing\n--- # a separator with a comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [{name: a, image: i, command: [x]}]\n---\n\n...\n---\napiVersion: example.com/v1\nkind: Pod\nmetadata: {name: not-core}\nspec: {containers: [{name: a, command: [x]}]}\n"
	out, objs, err := Inject([]byte(input), Options{Config: testConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || !objs[0].Injected {
		t.Fatalf("objects: %+v", objs)
	}
	docs, outDocs := split([]byte(input)), split(out)
	if len(docs) != len(outDocs) {
		t.Fatalf("%d documents became %d", len(docs), len(outDocs))
	}
	for i := range docs {
		if !bytes.Equal(docs[i].sep, outDocs[i].sep) {
			t.Errorf("separator %d changed", i)
		}
		if i != 2 && !bytes.Equal(docs[i].text, outDocs[i].text) {
			t.Errorf("document %d changed:\n%s", i+1, outDocs[i].text)
		}
	}
}

func TestErrors(t *testing.T) {
	_, _, err := Inject([]byte("kind: Pod\n---\nkind: [\n"), Options{Config: testConfig()})
	if err == nil || !strings.Contains(err.Error(), "document 2 is not valid YAML") {
		t.Fatalf("got %v", err)
	}
	in := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: nope\n"
	out, objs, err := Inject([]byte(in), Options{Config: testConfig()})
	if err != nil || len(objs) != 1 || objs[0].Error == "" || string(out) != in {
		t.Fatalf("a bad template must be reported and left as it is: %v %+v", err, objs)
	}
	in = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec: {schedule: x}\n"
	_, objs, _ = Inject([]byte(in), Options{Config: testConfig()})
	if len(objs) != 1 || !strings.Contains(objs[0].Error, "no pod template at spec.jobTemplate.spec.template") {
		t.Fatalf("got %+v", objs)
	}
}

// FuzzInject: any input either is refused as YAML or gives output that a
// second pass leaves unchanged; nothing panics.
func FuzzInject(f *testing.F) {
	for _, glob := range []string{"../testdata/mutate/*.yaml", "../../cmd/fargate-otel/testdata/*.yaml", "../../cmd/fargate-otel/testdata/corpus/[0-9]*"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		out, _, err := Inject(input, Options{Config: testConfig()})
		if err != nil {
			return
		}
		again, _, err := Inject(out, Options{Config: testConfig()})
		if err != nil {
			t.Fatalf("the output does not parse: %v\n%s", err, out)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%s\n-----\n%s", out, again)
		}
	})
}
