package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/manifest"
)

// The corpus: manifests in the shapes people apply (Deployments in the
// common indentation styles, a StatefulSet with init containers of its own,
// a Job with its own native sidecar, a CronJob, an ingress controller with a
// restricted security context, a ten-service demo shop with multi-line
// strings, a List, CRLF line ends, kubectl's and jq's JSON).
func corpusFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/[0-9]*")
	if err != nil || len(files) < 12 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	return files
}

// TestCorpus runs the real CLI on every manifest of the corpus: the output
// is its golden file, differs from the input only by the injection (a line
// diff that holds only injected lines), holds exactly what Mutate gives each
// pod template, reads strictly as its kinds, and a second pass changes
// nothing. JSON in gives JSON out.
func TestCorpus(t *testing.T) {
	var inLines, added, rewritten int
	for _, file := range corpusFiles(t) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, nil, "inject", "-f", file)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}

			// Only injected lines: every input line is still there, in
			// order, except lines the injection itself changes.
			d := lineDiff(string(input), r.stdout)
			for _, l := range d.removed {
				t.Errorf("a line changed beyond the injection: %q", l)
			}
			inLines += strings.Count(string(input), "\n")
			added += len(d.added)
			rewritten += len(d.changed)

			checkAgainstMutate(t, input, []byte(r.stdout))
			golden(t, filepath.Join("corpus", "golden", name), r.stdout)
			golden(t, filepath.Join("corpus", "golden", name+".stderr"), r.stderr)

			isJSON := strings.HasSuffix(name, ".json")
			if isJSON {
				checkJSONStream(t, r.stdout)
			}

			// A second pass: byte for byte, every template already injected.
			again := runCLI(t, []byte(r.stdout), "inject", "-f", "-")
			if again.code != 0 || again.stdout != r.stdout {
				t.Fatalf("second pass changed the output (exit %d):\n%s", again.code, again.stderr)
			}
			if strings.Contains(again.stderr, " injected") && !strings.Contains(again.stderr, "already injected") {
				t.Fatalf("second pass injected again:\n%s", again.stderr)
			}
		})
	}
	t.Logf("corpus: %d input lines; %d injected lines added, %d lines rewritten by the injection (flow-style commands, JSON commas), 0 other lines changed",
		inLines, added, rewritten)
}

// injectionChange: a line the injection rewrites. A flow-style command
// gains the wrapper before its own words (what precedes the "[" and
// follows the "]", a comment, stays); a JSON member gains a comma because a
// member follows it now.
func injectionChange(before, after string) bool {
	if after == before+"," {
		return true
	}
	if json.Valid([]byte(before)) && json.Valid([]byte(after)) && strings.HasPrefix(before, "{") {
		return true // a compact JSON document on one line (checked against Mutate)
	}
	i, j := strings.Index(before, "["), strings.LastIndex(before, "]")
	k, l := strings.Index(after, "["), strings.LastIndex(after, "]")
	if i < 0 || j < i || k < 0 || l < k || before[:i] != after[:k] || before[j+1:] != after[l+1:] {
		return false
	}
	old, nu := before[i+1:j], after[k+1:l]
	return strings.HasSuffix(nu, ", "+strings.TrimSpace(old)) && strings.HasPrefix(nu, injector.TeePath+", ")
}

// diff is a line diff: added lines, removed lines, and changed pairs (a
// removed line directly replaced by an added one).
type diff struct {
	added, removed []string
	changed        [][2]string
}

func lineDiff(a, b string) diff {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	n, m := len(x), len(y)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var d diff
	var gone, come []string
	// A removed line is paired with the added line of its hunk that the
	// injection could have made of it; the others stay removed or added.
	flush := func() {
		for _, g := range gone {
			paired := false
			for k, c := range come {
				if injectionChange(g, c) {
					d.changed = append(d.changed, [2]string{g, c})
					come = append(come[:k:k], come[k+1:]...)
					paired = true
					break
				}
			}
			if !paired {
				d.removed = append(d.removed, g)
			}
		}
		d.added = append(d.added, come...)
		gone, come = nil, nil
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			flush()
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			come = append(come, y[j])
			j++
		default:
			gone = append(gone, x[i])
			i++
		}
	}
	flush()
	return d
}

// checkAgainstMutate: each pod template of the output is exactly what
// Mutate makes of the input's (the CLI's config: the defaults, every pod).
func checkAgainstMutate(t *testing.T, input, output []byte) {
	t.Helper()
	in, err := manifest.Pods(input)
	if err != nil {
		t.Fatal(err)
	}
	out, err := manifest.Pods(output)
	if err != nil {
		t.Fatalf("the output does not read: %v", err)
	}
	if len(in) != len(out) || len(in) == 0 {
		t.Fatalf("%d pod templates became %d", len(in), len(out))
	}
	cfg := injector.DefaultConfig()
	cfg.Scope = injector.ScopeAll
	for i := range in {
		want := injector.Mutate(in[i].Pod, cfg, nil)
		if !want.Injected {
			t.Fatalf("%s: Mutate did not inject: %s", in[i].Object, want.Skip)
		}
		a, _ := json.Marshal(out[i].Pod)
		b, _ := json.Marshal(want.Pod)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the output's template differs from Mutate's result", in[i].Object)
		}
	}
}

// checkJSONStream: the output is a stream of JSON values that encoding/json
// reads, each an object.
func checkJSONStream(t *testing.T, out string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for {
		var v map[string]any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("JSON in gave output encoding/json cannot read: %v", err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no JSON value in the output")
	}
}

// TestCorpusStrict: --strict fails (status 2) exactly when a container whose
// logs are wanted is not captured, names it, and passes once --commands
// gives the missing commands.
func TestCorpusStrict(t *testing.T) {
	for _, file := range corpusFiles(t) {
		plain := runCLI(t, nil, "inject", "-f", file)
		m := regexp.MustCompile(`(\d+) not captured`).FindStringSubmatch(plain.stderr)
		if m == nil {
			t.Fatalf("%s: no summary line:\n%s", file, plain.stderr)
		}
		strict := runCLI(t, nil, "inject", "-f", file, "--strict")
		want := 0
		if m[1] != "0" {
			want = exitNotCaptured
		}
		if strict.code != want || strict.stdout != plain.stdout {
			t.Errorf("%s: --strict exit %d, want %d (%s not captured):\n%s", file, strict.code, want, m[1], strict.stderr)
		}
		if want != 0 && !strings.Contains(strict.stderr, "--strict: "+m[1]+" container(s) not captured: ") {
			t.Errorf("%s: --strict does not say which:\n%s", file, strict.stderr)
		}
		given := runCLI(t, nil, "inject", "-f", file, "--strict", "--commands", "testdata/corpus/commands.yaml")
		if given.code != 0 || !strings.Contains(given.stderr, " 0 not captured") {
			t.Errorf("%s: with --commands, exit %d:\n%s", file, given.code, given.stderr)
		}
	}
}

// TestCorpusSummary: the demo shop's summary counts templates and
// containers the way the report lists them.
func TestCorpusSummary(t *testing.T) {
	r := runCLI(t, nil, "inject", "-f", "testdata/corpus/08-demo-shop.yaml")
	want := "summary: 11 pod templates (11 injected, 0 already injected, 0 not injected); 12 containers: 8 wrapped, 3 captured by another log source, 0 not captured, 1 left out\n"
	if !strings.HasSuffix(r.stderr, want) {
		t.Fatalf("summary:\n%s\nwant %s", r.stderr, want)
	}
	for _, name := range []string{"cartservice", "paymentservice", "recommendationservice"} {
		if !strings.Contains(r.stderr, "deployment/"+name+" injected; from the kubelet (log source api): server") {
			t.Errorf("the report does not name %s's container as read from the kubelet:\n%s", name, r.stderr)
		}
	}
	// Where the api log source cannot work (kubelet stats off: no node
	// proxy), they are not captured.
	r = runCLI(t, nil, "inject", "-f", "testdata/corpus/08-demo-shop.yaml", "--kubelet-stats", "off")
	if want := "12 containers: 8 wrapped, 3 not captured, 1 left out\n"; !strings.HasSuffix(r.stderr, want) {
		t.Fatalf("summary with kubelet stats off:\n%s\nwant %s", r.stderr, want)
	}
	for _, name := range []string{"cartservice", "paymentservice", "recommendationservice"} {
		if !strings.Contains(r.stderr, "deployment/"+name+" injected; not captured: server") {
			t.Errorf("the report does not name %s's container as not captured:\n%s", name, r.stderr)
		}
	}
}
