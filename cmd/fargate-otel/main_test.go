package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// cli is the real fargate-otel binary: $FARGATE_OTEL_CLI when the Makefile
// gives one, else built by TestMain.
var cli string

func TestMain(m *testing.M) {
	flag.Parse()
	cli = os.Getenv("FARGATE_OTEL_CLI")
	if cli == "" {
		dir, err := os.MkdirTemp("", "fargate-otel-cli")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cli = filepath.Join(dir, "fargate-otel")
		if err := gobuild.Build(context.Background(), "./cmd/fargate-otel", cli); err != nil {
			fmt.Fprintln(os.Stderr, "build fargate-otel:", err)
			os.Exit(1)
		}
		code := m.Run()
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type run struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, stdin []byte, args ...string) run {
	t.Helper()
	cmd := exec.Command(cli, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	err := cmd.Run()
	r := run{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", cli, err)
	}
	return r
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/fargate-otel -update creates it)", err)
	}
	if string(want) != got {
		w, g := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		for i := 0; i < len(w) && i < len(g); i++ {
			if w[i] != g[i] {
				t.Fatalf("%s differs at line %d:\n- %s\n+ %s\n(go test ./cmd/fargate-otel -update, then review the diff)", path, i+1, w[i], g[i])
			}
		}
		t.Fatalf("%s differs in length (%d vs %d lines)", path, len(w), len(g))
	}
}

// documents splits a stream the simple way (the test inputs have "---"
// lines only between documents).
func documents(s string) []string {
	return strings.Split(s, "\n---\n")
}

func TestInjectWorkloads(t *testing.T) {
	r := runCLI(t, nil, "inject", "-f", "testdata/workloads.yaml", "--cluster-name", "shop-prod")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	golden(t, "workloads.golden.yaml", r.stdout)
	golden(t, "workloads.stderr.golden", r.stderr)

	input, _ := os.ReadFile("testdata/workloads.yaml")
	in, out := documents(string(input)), documents(r.stdout)
	if len(in) != len(out) {
		t.Fatalf("%d documents became %d", len(in), len(out))
	}
	// Service and ConfigMap: byte for byte.
	for _, i := range []int{0, 5} {
		if in[i] != out[i] {
			t.Errorf("document %d changed:\n%s", i+1, out[i])
		}
	}
	// Every workload still reads strictly as its kind, injected.
	var d appsv1.Deployment
	strict(t, out[1], &d)
	checkTemplate(t, "deployment", &d.Spec.Template, true)
	if !strings.Contains(out[1], "# The web server; its comments survive injection.") || !strings.Contains(out[1], "# flow style kept") {
		t.Errorf("comments of the deployment lost")
	}
	var j batchv1.Job
	strict(t, out[2], &j)
	checkTemplate(t, "job", &j.Spec.Template, true)
	if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 2 {
		t.Errorf("job fields lost")
	}
	var cj batchv1.CronJob
	strict(t, out[3], &cj)
	checkTemplate(t, "cronjob", &cj.Spec.JobTemplate.Spec.Template, true)
	var ss appsv1.StatefulSet
	strict(t, out[4], &ss)
	checkTemplate(t, "statefulset", &ss.Spec.Template, false)
	var ds appsv1.DaemonSet
	strict(t, out[6], &ds)
	checkTemplate(t, "daemonset", &ds.Spec.Template, true)

	// The report names each workload and the container it could not wrap
	// (read from the kubelet instead).
	for _, want := range []string{"deployment/web injected", "job/migrate injected", "cronjob/report injected", "statefulset/cache injected",
		"container cache is not wrapped: it has no command", "from the kubelet (log source api): cache", "hint: give such containers their command with --command", "let --resolve read it", "daemonset/agent injected",
		"summary: 5 pod templates (5 injected, 0 already injected, 0 not injected); 5 containers: 4 wrapped, 1 captured by another log source, 0 not captured, 0 left out"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stderr)
		}
	}

	// A second pass is a no-op, byte for byte.
	again := runCLI(t, []byte(r.stdout), "inject", "-f", "-")
	if again.code != 0 || again.stdout != r.stdout {
		t.Fatalf("second pass changed the output (exit %d)", again.code)
	}
	if strings.Count(again.stderr, "already injected, unchanged") != 5 {
		t.Fatalf("second pass report:\n%s", again.stderr)
	}
}

// checkTemplate checks the shape of an injected template: the native
// sidecar first, the status, and whether the app container is wrapped (if
// not, the follower reads it from the kubelet: log source api).
func checkTemplate(t *testing.T, what string, tmpl *corev1.PodTemplateSpec, wrapped bool) {
	t.Helper()
	if _, ok := tmpl.Annotations["fargate-otel.io/status"]; !ok {
		t.Errorf("%s: no status annotation", what)
	}
	ics := tmpl.Spec.InitContainers
	var names []string
	for _, c := range ics {
		names = append(names, c.Name)
	}
	want := []string{injector.InitContainerName, injector.CollectorContainerName}
	if !wrapped {
		want = []string{injector.CollectorContainerName, injector.FollowerContainerName}
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("%s: init containers %v, want %v", what, names, want)
	}
	app := tmpl.Spec.Containers[0]
	if got := len(app.Command) > 0 && app.Command[0] == injector.TeePath; got != wrapped {
		t.Errorf("%s: wrapped %v, want %v (command %q)", what, got, wrapped, app.Command)
	}
}

func strict(t *testing.T, doc string, into any) {
	t.Helper()
	if err := sigsyaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
}

func TestInjectListFromStdin(t *testing.T) {
	input, _ := os.ReadFile("testdata/list.yaml")
	r := runCLI(t, input, "inject", "-f", "-", "--native-sidecars=false", "--kubelet-stats", "direct")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	golden(t, "list.golden.yaml", r.stdout)
	var list corev1.List
	strict(t, r.stdout, &list)
	var pod corev1.Pod
	strict(t, string(list.Items[0].Raw), &pod)
	last := pod.Spec.Containers[len(pod.Spec.Containers)-1]
	if last.Name != injector.CollectorContainerName || last.RestartPolicy != nil {
		t.Fatalf("without native sidecars the collector must be the last regular container, got %s", last.Name)
	}
	if !strings.Contains(r.stdout, "name: untouched\n  data:\n    a: b") {
		t.Errorf("the ConfigMap item changed")
	}
}

// A cluster without the sleep action (< 1.30) refuses a preStop sleep: the
// flag leaves it out, and the collector's hard stop gets the whole grace.
func TestInjectWithoutPreStopSleep(t *testing.T) {
	input, _ := os.ReadFile("testdata/list.yaml")
	for _, tt := range []struct {
		flag      string
		wantSleep bool
	}{{"--prestop-sleep=true", true}, {"--prestop-sleep=false", false}} {
		r := runCLI(t, input, "inject", "-f", "-", "--native-sidecars=false", tt.flag)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", tt.flag, r.code, r.stderr)
		}
		var list corev1.List
		strict(t, r.stdout, &list)
		var pod corev1.Pod
		strict(t, string(list.Items[0].Raw), &pod)
		c := pod.Spec.Containers[len(pod.Spec.Containers)-1]
		hasSleep := c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil
		if c.Name != injector.CollectorContainerName || hasSleep != tt.wantSleep {
			t.Errorf("%s: collector %s has a preStop sleep: %v, want %v", tt.flag, c.Name, hasSleep, tt.wantSleep)
		}
	}
}

func TestInjectErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no input", "", []string{"inject"}, "no input: give -f FILE"},
		{"missing file", "", []string{"inject", "-f", "testdata/nope.yaml"}, "read testdata/nope.yaml"},
		{"not YAML", "kind: Pod\n---\nkind: [\n", []string{"inject", "-f", "-"}, "document 2 is not valid YAML"},
		{"bad config flag", "", []string{"inject", "-f", "-", "--kubelet-stats", "sideways"}, `kubeletStats.mode "sideways" is not proxy, direct or off`},
		{"bad config file", "", []string{"inject", "-f", "-", "--config", "testdata/bad-config.yaml"}, `unknown field "clusterNmae"`},
		{"bad signal", "", []string{"render", "--signals", "logs,profiles"}, `--signals: "profiles" is not logs, metrics or traces`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, []byte(tt.stdin), tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want an error with %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
	// A template that does not read as a pod: reported, passed through, exit 1.
	bad := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: 7\n"
	r := runCLI(t, []byte(bad), "inject", "-f", "-")
	if r.code != 1 || r.stdout != bad || !strings.Contains(r.stderr, "deployment/d: error: the pod template does not read as a pod") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestInjectWithConfigFile(t *testing.T) {
	r := runCLI(t, nil, "inject", "-f", "testdata/list.yaml", "--config", "testdata/config.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"image: registry.example.com/fargate-otel/tee:v1", "image: registry.example.com/fargate-otel/collector:v1",
		"https://nodeproxy.observability.svc:8443/api/v1/nodes/${env:NODE_NAME}/proxy", `"clusterName":"from-config-file"`, "--max-size=2Mi"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestRender(t *testing.T) {
	r := runCLI(t, nil, "render", "--cluster-name", "prod", "--exporter-endpoint", "gateway.observability.svc:4317", "--kubelet-stats", "direct")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	golden(t, "render.golden.yaml", r.stdout)

	// Per workload: the CronJob has no metrics, the DaemonSet uses the
	// exporters of the ConfigMap in the same input.
	r = runCLI(t, nil, "render", "-f", "testdata/workloads.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	docs := documents(r.stdout)
	if len(docs) != 5 {
		t.Fatalf("%d configs for 5 workloads", len(docs))
	}
	byName := map[string]string{}
	for _, d := range docs {
		byName[strings.SplitN(d, "\n", 2)[0]] = d
	}
	if c := byName["# cronjob/report"]; c == "" || strings.Contains(c, "kubelet_stats") || strings.Contains(c, "    metrics:\n      receivers:") {
		t.Errorf("cronjob config has metrics:\n%s", c)
	}
	if c := byName["# daemonset/agent"]; !strings.Contains(c, "otlp_http/vendor") || strings.Contains(c, "otlp_grpc/gateway") {
		t.Errorf("daemonset config does not use its ConfigMap's exporters:\n%s", c)
	}

	// Injected with other settings, each workload renders what its pod
	// carries, not what the flags of this run say: the same configs.
	injected := runCLI(t, nil, "inject", "-f", "testdata/workloads.yaml")
	if injected.code != 0 {
		t.Fatalf("inject: exit %d: %s", injected.code, injected.stderr)
	}
	again := runCLI(t, []byte(injected.stdout), "render", "-f", "-", "--cluster-name", "not-this-one")
	if again.code != 0 {
		t.Fatalf("render of injected workloads: exit %d: %s", again.code, again.stderr)
	}
	if n := len(documents(again.stdout)); n != len(docs) {
		t.Fatalf("%d configs for %d injected workloads", n, len(docs))
	}
	for _, d := range documents(again.stdout) {
		name := strings.SplitN(d, "\n", 2)[0]
		if strings.Contains(d, "not-this-one") {
			t.Errorf("%s: rendered from the flags, not from its pod:\n%s", name, d)
		}
		want := strings.Replace(d, "# already injected: the config its sidecar was given at admission\n", "", 1)
		if want == d {
			t.Errorf("%s: not said to be already injected:\n%s", name, d)
		}
		if byName[name] != want {
			t.Errorf("%s: the injected pod's config differs from the one rendered before injection:\n%s\nbefore:\n%s", name, want, byName[name])
		}
	}
}
