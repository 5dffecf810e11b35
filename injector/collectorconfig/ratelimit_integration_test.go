package collectorconfig_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/internal/syncbuf"
)

// leftOut is the wrapper's line in the file about the lines a budget left out.
var leftOut = regexp.MustCompile(`^fargate-otel-tee: (\d+) log lines \((\d+) bytes\) were left out of this file since \S+: over the log rate limit \(([^)]+)\)`)

// TestLogRateLimitAnnotation: the budget of the annotation
// fargate-otel.io/log-rate-limit, as Mutate writes it into the wrapped
// command, run by the real wrapper with the real collector reading its file.
// An app far over the budget gets the burst and the rate into the file and
// to the sink, plus one line saying how many were left out; its stdout and
// stderr get every line.
func TestLogRateLimitAnnotation(t *testing.T) {
	const (
		lines = 3000 // per stream, written flat out
		rate  = 1000 // lines per second
		burst = 1000
	)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop", Labels: map[string]string{injector.FargateProfileLabel: "fp"}, Annotations: map[string]string{
			annotations.LogRateLimit: strconv.Itoa(rate) + "/s:" + strconv.Itoa(burst),
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1", Command: []string{"/app"}}}},
	}
	res := injector.Mutate(pod, injector.DefaultConfig(), nil)
	if !res.Injected || len(res.Warnings) > 0 {
		t.Fatalf("injected %v, warnings %q", res.Injected, res.Warnings)
	}
	// The pod's paths are the injector's; the budget is what is tested.
	var budget []string
	for _, a := range res.Pod.Spec.Containers[0].Command {
		if strings.HasPrefix(a, "--rate-limit-") {
			budget = append(budget, a)
		}
	}
	if want := []string{"--rate-limit-lines=1000", "--rate-limit-lines-burst=1000"}; strings.Join(budget, " ") != strings.Join(want, " ") {
		t.Fatalf("the wrapper's budget flags are %q, want %q", budget, want)
	}

	f := newFixture(t, nil)
	collector := f.startCollector()
	var stdout, stderr syncbuf.Buffer
	start := time.Now()
	a := startAppWith(t, f, appOptions{lines: lines, maxSize: "10Mi", wrapperFlags: budget, stdout: &stdout, stderr: &stderr})
	files := finish(t, f, a, collector)
	elapsed := time.Since(start)

	// The passthrough has everything.
	for _, s := range []struct {
		name string
		out  string
	}{{"stdout", stdout.String()}, {"stderr", stderr.String()}} {
		if n := strings.Count(s.out, "stream="+s.name); n != lines {
			t.Errorf("%s passed %d of the app's %d lines through", s.name, n, lines)
		}
	}

	// The file has the burst and at most the rate since, and the report.
	kept, reports, reported := 0, 0, 0
	for _, l := range files {
		if m := leftOut.FindStringSubmatch(l.text); m != nil {
			reports++
			reported, _ = strconv.Atoi(m[1])
			if m[3] != "1000 lines/s, burst 1000" {
				t.Errorf("the report names the limit %q", m[3])
			}
			continue
		}
		if strings.HasPrefix(l.text, "seq=") {
			kept++
		}
	}
	most := burst + int(elapsed.Seconds()*rate) + 1
	if kept < burst || kept > most {
		t.Errorf("the file kept %d of %d lines in %s, want between the burst %d and %d", kept, 2*lines, elapsed.Round(time.Millisecond), burst, most)
	}
	if reports != 1 || kept+reported != 2*lines {
		t.Errorf("%d reports, saying %d lines were left out; %d were kept of %d", reports, reported, kept, 2*lines)
	}
	// The sink has what the file has, and nothing else (finish waited for
	// every line of the files).
	if got := f.sink.LogCount(); got != len(files) {
		t.Errorf("the sink has %d records, the file %d lines", got, len(files))
	}
	t.Logf("%d of %d lines kept in %s, %d reported left out, all %d passed through", kept, 2*lines, elapsed.Round(time.Millisecond), reported, 2*lines)
}
