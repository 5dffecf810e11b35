package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
)

const apiFile = "testdata/corpus/02-deployment-indented.yaml"

// TestCommandFlag: --command gives a container without one its command, as
// if in the spec (the spec's args still follow), for every template or one
// workload; a flag that matches nothing is reported; bad flags are errors.
func TestCommandFlag(t *testing.T) {
	r := runCLI(t, nil, "inject", "-f", apiFile, "--command", `api=["/app/api","--verbose"]`, "--command", `statefulset/db:postgres=["/x"]`)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var d appsv1.Deployment
	strict(t, r.stdout, &d)
	cmd := d.Spec.Template.Spec.Containers[0].Command
	if len(cmd) < 2 || cmd[0] != injector.TeePath || strings.Join(cmd[len(cmd)-3:], " ") != "-- /app/api --verbose" {
		t.Fatalf("api's command %q: want the wrapper, then /app/api --verbose", cmd)
	}
	for _, want := range []string{"deployment/api injected (logs of [api metrics-proxy])", " 0 not captured",
		"warning: --command statefulset/db:postgres matched no container without a command"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stderr)
		}
	}
	// The workload's own prefix wins over the plain name.
	r = runCLI(t, nil, "inject", "-f", apiFile, "--command", `api=["/generic"]`, "--command", `deployment/api:api=["/specific"]`)
	strict(t, r.stdout, &d)
	if c := d.Spec.Template.Spec.Containers[0].Command; c[len(c)-1] != "/specific" {
		t.Errorf("command %q: want the workload's own", c)
	}
	for _, bad := range []struct{ flag, want string }{
		{"api", "want CONTAINER=JSON"},
		{"api=/app/api", "a JSON array of strings"},
		{"api=[]", "a JSON array of strings"},
		{"web:api=[\"/a\"]", "KIND/NAME"},
		{`=["/a"]`, "no container name"},
	} {
		r := runCLI(t, nil, "inject", "-f", apiFile, "--command", bad.flag)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("--command %s: exit %d, stderr %q; want an error with %q", bad.flag, r.code, r.stderr, bad.want)
		}
	}
	r = runCLI(t, nil, "inject", "-f", apiFile, "--commands", "testdata/config.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "--commands testdata/config.yaml: want a mapping") {
		t.Errorf("a bad --commands file: exit %d, %s", r.code, r.stderr)
	}
}

// TestWorkloadMetadataWarning: fargate-otel.io/command on the Deployment's
// own metadata is said to belong on the pod template.
func TestWorkloadMetadataWarning(t *testing.T) {
	r := runCLI(t, nil, "inject", "-f", apiFile)
	want := "warning: fargate-otel: annotation fargate-otel.io/command is on the Deployment's own metadata, where nothing reads it: the injector reads the pod's, so move it to spec.template.metadata.annotations"
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("no warning about the misplaced annotation:\n%s", r.stderr)
	}
	// A label on both (a common habit) is not reported.
	both := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  labels: {fargate-otel.io/inject: disabled}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata:\n      labels: {a: b, fargate-otel.io/inject: disabled}\n    spec:\n      containers: [{name: a, image: i, command: [x]}]\n"
	if r := runCLI(t, []byte(both), "inject", "-f", "-"); strings.Contains(r.stderr, "own metadata") || !strings.Contains(r.stderr, "skipped (opted-out)") {
		t.Fatalf("label on both: %s", r.stderr)
	}
	cron := "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    metadata:\n      annotations: {fargate-otel.io/logs: disabled}\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: a, image: i, command: [x]}]\n"
	if r := runCLI(t, []byte(cron), "inject", "-f", "-"); !strings.Contains(r.stderr, "annotation fargate-otel.io/logs is on the CronJob's jobTemplate's own metadata") {
		t.Fatalf("cronjob: %s", r.stderr)
	}
}

// TestAlreadyInjectedNamesWhatIsMissing: a template injected while a
// container had no command says which, and how to redo it; once a command
// is known (an annotation added to the injected template, or --command),
// it says --reinject will use it, and --reinject wraps it, changing only
// injected lines. Kubelet stats are off, so that the api log source, which
// reads such a container from the kubelet through the node proxy, cannot
// capture it (TestFollowsWhatCannotBeWrapped shows it with the proxy).
func TestAlreadyInjectedNamesWhatIsMissing(t *testing.T) {
	off := []string{"--kubelet-stats", "off"}
	first := runCLI(t, nil, append([]string{"inject", "-f", apiFile}, off...)...)
	again := runCLI(t, []byte(first.stdout), append([]string{"inject", "-f", "-"}, off...)...)
	for _, want := range []string{
		"deployment/api already injected, unchanged; not captured when it was injected: api",
		"hint: give their command (--command api=JSON, --resolve, or the annotation fargate-otel.io/command on the pod template), then run again with --reinject",
		"summary: 1 pod templates (0 injected, 1 already injected, 0 not injected); 2 containers: 1 wrapped, 1 not captured, 0 left out",
	} {
		if !strings.Contains(again.stderr, want) {
			t.Errorf("second pass lacks %q:\n%s", want, again.stderr)
		}
	}
	if again.stdout != first.stdout {
		t.Fatal("second pass changed the output")
	}
	// The annotation added to the injected template.
	edited := strings.Replace(first.stdout, "        prometheus.io/scrape: \"true\"\n", "        prometheus.io/scrape: \"true\"\n        fargate-otel.io/command: '{\"api\":[\"/app/api\"]}'\n", 1)
	if edited == first.stdout {
		t.Fatal("could not add the annotation")
	}
	r := runCLI(t, []byte(edited), append([]string{"inject", "-f", "-", "--strict"}, off...)...)
	if r.code != exitNotCaptured || !strings.Contains(r.stderr, "hint: a command for api is known now: run again with --reinject to inject deployment/api anew with it") {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	re := runCLI(t, []byte(edited), append([]string{"inject", "-f", "-", "--strict", "--reinject"}, off...)...)
	if re.code != 0 || !strings.Contains(re.stderr, "deployment/api injected anew (logs of [api metrics-proxy])") {
		t.Fatalf("--reinject: exit %d:\n%s", re.code, re.stderr)
	}
	var d appsv1.Deployment
	strict(t, re.stdout, &d)
	if c := d.Spec.Template.Spec.Containers[0].Command; len(c) == 0 || c[0] != injector.TeePath || c[len(c)-1] != "/app/api" {
		t.Fatalf("api's command after --reinject: %q", c)
	}
	if n := len(d.Spec.Template.Spec.InitContainers); n != 2 {
		t.Fatalf("%d init containers after --reinject, want the installer and the collector", n)
	}
	// The same as injecting the original with the command given.
	orig, _ := os.ReadFile(apiFile)
	withAnn := strings.Replace(string(orig), "        prometheus.io/port: \"9090\"\n", "        prometheus.io/port: \"9090\"\n        fargate-otel.io/command: '{\"api\":[\"/app/api\"]}'\n", 1)
	direct := runCLI(t, []byte(withAnn), append([]string{"inject", "-f", "-"}, off...)...)
	var d2 appsv1.Deployment
	strict(t, direct.stdout, &d2)
	if a, b := mustJSON(t, d.Spec.Template), mustJSON(t, d2.Spec.Template); a != b {
		t.Fatalf("--reinject gave another template than injecting the original:\n%s\n%s", a, b)
	}
	// Lines: only the injection's changed.
	for _, l := range lineDiff(edited, re.stdout).removed {
		if !strings.Contains(l, "fargate-otel") && !strings.Contains(l, "OTEL_") && !strings.Contains(l, "value: \"true\"") && !strings.Contains(l, "env:") {
			t.Errorf("--reinject changed a line of the user's: %q", l)
		}
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

// TestOutputFormats: -o json writes YAML input as JSON that encoding/json
// reads; -o yaml writes JSON input as block YAML; both hold the same objects
// as the default output.
func TestOutputFormats(t *testing.T) {
	yamlOut := runCLI(t, nil, "inject", "-f", apiFile)
	jsonOut := runCLI(t, nil, "inject", "-f", apiFile, "-o", "json")
	if jsonOut.code != 0 {
		t.Fatalf("exit %d: %s", jsonOut.code, jsonOut.stderr)
	}
	var fromJSON, fromYAML appsv1.Deployment
	if err := json.Unmarshal([]byte(jsonOut.stdout), &fromJSON); err != nil {
		t.Fatalf("-o json is not JSON: %v", err)
	}
	strict(t, yamlOut.stdout, &fromYAML)
	if mustJSON(t, fromJSON) != mustJSON(t, fromYAML) {
		t.Fatal("-o json holds another object than the YAML output")
	}

	kubectl := "testdata/corpus/11-kubectl-list.json"
	asYAML := runCLI(t, nil, "inject", "-f", kubectl, "-o", "yaml")
	if asYAML.code != 0 || !strings.HasPrefix(asYAML.stdout, "apiVersion: v1\nkind: List\n") || strings.Contains(asYAML.stdout, "\"containers\": [") {
		t.Fatalf("-o yaml of JSON input is not block YAML (exit %d):\n%.400s", asYAML.code, asYAML.stdout)
	}
	asJSON := runCLI(t, nil, "inject", "-f", kubectl)
	var l1, l2 any
	j1, err := sigsyaml.YAMLToJSON([]byte(asYAML.stdout))
	if err != nil {
		t.Fatal(err)
	}
	if json.Unmarshal(j1, &l1) != nil || json.Unmarshal([]byte(asJSON.stdout), &l2) != nil {
		t.Fatal("outputs do not read")
	}
	if mustJSON(t, l1) != mustJSON(t, l2) {
		t.Fatal("-o yaml holds another object than the JSON output")
	}
	if r := runCLI(t, nil, "inject", "-f", kubectl, "-o", "xml"); r.code == 0 || !strings.Contains(r.stderr, "want json or yaml") {
		t.Fatalf("-o xml: %d %s", r.code, r.stderr)
	}

	// A JSON file and a YAML file together: YAML out, the JSON document
	// written as YAML.
	mixed := runCLI(t, nil, "inject", "-f", kubectl, "-f", apiFile)
	if mixed.code != 0 || strings.Count(mixed.stdout, "\n---\n") != 1 {
		t.Fatalf("mixed inputs (exit %d):\n%.300s", mixed.code, mixed.stdout)
	}
	for _, doc := range strings.Split(mixed.stdout, "\n---\n") {
		var v map[string]any
		if err := sigsyaml.Unmarshal([]byte(doc), &v); err != nil || v["kind"] == nil {
			t.Fatalf("a document of the mixed output does not read: %v", err)
		}
	}
}
