package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEditsInPlace: the shapes the injection meets, each edited in place
// (no document written anew) into text that keeps every input line, in
// order, and reads as the injected object (Inject checks that itself).
func TestEditsInPlace(t *testing.T) {
	const head = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
	for _, tt := range []struct {
		name  string
		input string
		// want are texts the output must hold (new lines in place).
		want []string
		// changed are input lines the injection may rewrite.
		changed []string
	}{
		{"empty flow annotations become a block", head + "  annotations: {}\nspec:\n  containers:\n  - name: a\n    image: i\n    command: [x]\n",
			[]string{"  annotations:\n    fargate-otel.io/fargate-size-after:"}, []string{"  annotations: {}", "    command: [x]"}},
		{"null metadata key", head + "  labels:\n  annotations:\nspec:\n  containers:\n  - name: a\n    image: i\n    command:\n    - x\n",
			[]string{"  annotations:\n    fargate-otel.io/"}, []string{"  annotations:"}},
		{"empty flow volumes", head + "spec:\n  volumes: []\n  containers:\n  - name: a\n    image: i\n    command:\n    - x\n",
			[]string{"  volumes:\n  - name: fargate-otel-bin"}, []string{"  volumes: []"}},
		{"a commented-out field stays with its container", head + "spec:\n  containers:\n  - name: a\n    image: i\n    command:\n    - x\n    # resources:\n    #   limits: {}\n  # the volumes\n  volumes:\n  - name: v\n    emptyDir: {}\n",
			[]string{"    #   limits: {}\n    env:\n", "    readOnly: true\n  # the volumes\n  volumes:\n  - name: v\n"}, nil},
		{"a block scalar at a container's end", head + "spec:\n  containers:\n  - name: a\n    image: i\n    command: [sh, -c]\n    args:\n    - |\n      echo one\n\n      echo two\n\n  restartPolicy: Always\n",
			[]string{"      echo one\n\n      echo two\n    env:\n"}, []string{"    command: [sh, -c]"}},
		{"a comment above the first init container", head + "spec:\n  initContainers:\n  # wait for the database\n  - name: wait\n    image: busybox\n    command: [sleep, '1']\n  containers:\n  - name: a\n    image: i\n    command: [x]\n",
			[]string{"  initContainers:\n  - name: fargate-otel-init\n", "  # wait for the database\n  - name: wait\n"}, []string{"    command: [x]"}},
		{"indented sequences, four spaces", "apiVersion: v1\nkind: Pod\nmetadata:\n    name: p\nspec:\n    containers:\n        -   name: a\n            image: i\n            command:\n                - x\n",
			[]string{"            volumeMounts:\n                -   name: fargate-otel-bin\n                    mountPath: /fargate-otel/bin\n", "    initContainers:\n        -   name: fargate-otel-init\n"}, nil},
		{"CRLF", strings.ReplaceAll(head+"spec:\n  containers:\n  - name: a\n    image: i\n    command:\n    - x\n", "\n", "\r\n"),
			[]string{"    - x\r\n    env:\r\n    - name: OTEL_EXPORTER_OTLP_INSECURE\r\n"}, nil},
		{"quoted and odd spacing kept", head + "spec:\n  containers:\n  - name: \"a\"   # the app\n    image: 'i'\n    command:\n    - \"x\"\n    env:\n    - {name: A, value: \"1\"}\n",
			[]string{"  - name: \"a\"   # the app\n", "    - {name: A, value: \"1\"}\n    - name: OTEL_EXPORTER_OTLP_INSECURE\n"}, nil},
		{"an aliased env the injection extends", head + "spec:\n  containers:\n  - name: a\n    image: i\n    command: [x]\n    env: &e\n    - name: A\n      value: \"1\"\n  - name: b\n    image: i\n    command: [z]\n    env: *e\n",
			[]string{"    env: &e\n    - name: A\n      value: \"1\"\n    - name: OTEL_EXPORTER_OTLP_INSECURE\n"}, []string{"    command: [x]", "    command: [z]", "    env: *e"}},
		{"shared resources by anchor", head + "spec:\n  containers:\n  - name: a\n    image: i\n    command: [x]\n    resources: &r\n      requests: {cpu: 10m}\n  - name: b\n    image: i\n    command: [z]\n    resources: *r\n",
			[]string{"    resources: &r\n", "    resources: *r\n"}, []string{"    command: [x]", "    command: [z]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noRewrites(t)
			out, objs, err := Inject([]byte(tt.input), Options{Config: testConfig()})
			if err != nil || len(objs) != 1 || !objs[0].Injected {
				t.Fatalf("err %v, objects %+v", err, objs)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			// Every input line is still there, in order, but the ones the
			// injection rewrites.
			rest := string(out)
			for _, l := range strings.SplitAfter(tt.input, "\n") {
				if l == "" || contains(tt.changed, strings.TrimRight(l, "\r\n")) {
					continue
				}
				i := strings.Index(rest, l)
				if i < 0 {
					t.Fatalf("input line %q is gone or out of order:\n%s", l, out)
				}
				rest = rest[i+len(l):]
			}
		})
	}
}

// TestCorpusIsEditedInPlace: every document of the CLI's corpus is edited,
// none written anew.
func TestCorpusIsEditedInPlace(t *testing.T) {
	noRewrites(t)
	files, _ := filepath.Glob("../../cmd/fargate-otel/testdata/corpus/[0-9]*")
	if len(files) < 12 {
		t.Fatalf("%d corpus files", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, objs, err := Inject(data, Options{Config: testConfig()}); err != nil || len(objs) == 0 {
			t.Fatalf("%s: %v, %d objects", f, err, len(objs))
		}
	}
}
