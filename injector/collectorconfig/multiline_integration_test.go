package collectorconfig_test

// Multiline records from real runtimes: Go, Python, Java, Node.js and Ruby
// programs (testdata/runtimes) write numbered lines on stdout and stderr at
// up to 1,000 lines/s and, between them, exceptions their runtime prints;
// the real wrapper writes CRI files, the real collector joins the records
// with the container's preset, and the sink must receive each report as
// exactly one record and every numbered line as its own.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

const (
	// Each app writes reports exceptions, lines numbered stderr lines
	// before each and after the last, and as many stdout lines meanwhile,
	// at rate numbered lines per second in total.
	reports = 30
	lines   = 30
	rate    = 1000
)

// numbered is an app's ordinary line: never part of a report.
var numbered = regexp.MustCompile(`^seq=\d{6} stream=(stdout|stderr) lang=[a-z]+$`)

// runtimeApp is one program of the test and the container it runs as.
type runtimeApp struct {
	// preset is the container's Parsing.Multiline: a preset or a regex.
	container, preset string
	// command is the program's command line (after the wrapper's --),
	// given the Go app's binary.
	command func(t *testing.T, goApp string) []string
	// interleaved says that the app writes stdout lines in the middle of
	// its reports on purpose, and the test checks that the file has them.
	interleaved bool
}

func runtimeApps() []runtimeApp {
	args := []string{strconv.Itoa(reports), strconv.Itoa(lines), strconv.Itoa(rate)}
	script := func(interp, file string, extra ...string) func(*testing.T, string) []string {
		return func(t *testing.T, _ string) []string {
			return append(append([]string{lookPath(t, interp), runtimeFile(t, file)}, args...), extra...)
		}
	}
	return []runtimeApp{
		{container: "go", preset: "go", command: func(_ *testing.T, goApp string) []string { return append([]string{goApp}, args...) }},
		{container: "python", preset: "python", command: script("python3", "app.py")},
		{container: "java", preset: "java", command: script("java", "App.java")},
		// A custom first-line regex: the numbered lines and the first line
		// of a Java report start records.
		{container: "java-regex", preset: `regex:^(?:seq=|Exception in thread |[\w$.]+(?:Exception|Error)\b)`, command: script("java", "App.java")},
		{container: "nodejs", preset: "nodejs", command: script("node", "app.js")},
		{container: "nodejs-top", preset: "nodejs", command: script("node", "app.js", "top")},
		{container: "ruby", preset: "ruby", command: script("ruby", "app.rb")},
		{container: "dotnet", preset: "dotnet", interleaved: true, command: func(t *testing.T, goApp string) []string {
			return append([]string{goApp, "-replay", runtimeFile(t, "dotnet.txt")}, args...)
		}},
	}
}

func TestMultilineRecordsFromRealRuntimes(t *testing.T) {
	apps := runtimeApps()
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
		c.LogParsing.Containers = map[string]sidecarconfig.Parsing{}
		for _, a := range apps {
			c.LogParsing.Containers[a.container] = sidecarconfig.Parsing{Multiline: a.preset}
		}
	})
	goApp := filepath.Join(t.TempDir(), "goapp")
	if err := gobuild.Build(context.Background(), "./injector/collectorconfig/testdata/runtimes/goapp", goApp); err != nil {
		t.Fatal(err)
	}
	f.startCollector()
	for _, a := range apps {
		t.Run(a.container, func(t *testing.T) {
			command := a.command(t, goApp)
			start := time.Now()
			runWrapped(t, f, a.container, command)
			elapsed := time.Since(start)

			file := readCRIFiles(t, filepath.Join(podDir(f), a.container))
			want, interleaved := expectedRecords(t, file)
			got := awaitRecords(t, f, a.container, want)
			if n := countReports(want); n != reports+1 {
				t.Errorf("the app wrote %d reports, want %d (%d caught and the last one): the expected records are wrong", n, reports+1, reports)
			}
			if a.interleaved && interleaved == 0 {
				t.Error("no stdout line in the middle of a report: the test did not exercise the separation of streams")
			}
			checkNoTemporaryAttributes(t, got)
			t.Logf("%s: %d lines in %s (%.0f numbered lines/s), %d records, %d reports (%d with stdout lines in their midst)",
				filepath.Base(command[0]), len(file), elapsed.Round(time.Millisecond), float64(2*lines*(reports+1))/elapsed.Seconds(),
				len(got), countReports(want), interleaved)
		})
	}
}

// record is a record as the tests compare them.
type record struct{ stream, body string }

// expectedRecords are the records a file must give: every numbered line
// on its own, and on stderr each run of other lines (one report) joined.
// interleaved counts the reports with stdout lines between their lines.
func expectedRecords(t *testing.T, file []criLine) (want []record, interleaved int) {
	t.Helper()
	var report []string
	sawStdout := false
	end := func() {
		if len(report) > 0 {
			want = append(want, record{"stderr", strings.Join(report, "\n")})
			if sawStdout {
				interleaved++
			}
		}
		report, sawStdout = nil, false
	}
	for _, l := range file {
		if l.tag != "F" {
			t.Fatalf("%s: a partial line (the test's lines are short): %+v", l.file, l)
		}
		switch {
		case l.stream == "stdout":
			if !numbered.MatchString(l.text) {
				t.Fatalf("an unexpected stdout line: %q", l.text)
			}
			want = append(want, record{"stdout", l.text})
			sawStdout = sawStdout || len(report) > 0
		case numbered.MatchString(l.text):
			end()
			want = append(want, record{"stderr", l.text})
		default:
			report = append(report, l.text)
		}
	}
	end()
	return want, interleaved
}

func countReports(want []record) int {
	n := 0
	for _, r := range want {
		if !numbered.MatchString(r.body) {
			n++
		}
	}
	return n
}

// awaitRecords waits until the sink's records of container are want (as a
// multiset), and fails with the difference when they are not in time.
func awaitRecords(t *testing.T, f *fixture, container string, want []record) []sinkRecord {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := containerRecords(f, container)
		missing, extra := diffRecords(want, got)
		if len(missing) == 0 && len(extra) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: %d records expected, %d received; %d missing, %d not expected:\n%s",
				container, len(want), len(got), len(missing), len(extra), describe(missing, extra))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func diffRecords(want []record, got []sinkRecord) (missing, extra []record) {
	count := map[record]int{}
	for _, r := range want {
		count[r]++
	}
	for _, r := range got {
		count[record{r.stream, r.Body}]--
	}
	for r, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, r)
		}
		for ; n < 0; n++ {
			extra = append(extra, r)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].body < missing[j].body })
	sort.Slice(extra, func(i, j int) bool { return extra[i].body < extra[j].body })
	return missing, extra
}

func describe(missing, extra []record) string {
	var b strings.Builder
	show := func(what string, rs []record) {
		for i, r := range rs {
			if i == 5 {
				fmt.Fprintf(&b, "  ... and %d more %s\n", len(rs)-5, what)
				break
			}
			fmt.Fprintf(&b, "  %s (%s): %q\n", what, r.stream, truncate(r.body, 600))
		}
	}
	show("missing", missing)
	show("not expected", extra)
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// runWrapped runs command under the real wrapper as container of the
// fixture's pod and waits for it; the apps end with an uncaught exception,
// so an exit status other than 0 is expected.
func runWrapped(t *testing.T, f *fixture, container string, command []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{
		"--log-dir", f.pods, "--container", container,
		"--namespace", f.pod.namespace, "--pod", f.pod.name, "--pod-uid", f.pod.uid,
		"--max-size", "64Mi", "--max-backups", "1", "--budget", "256Mi", "--",
	}, command...)
	cmd := exec.CommandContext(ctx, teeBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within 2 minutes:\n%s", command[0], tail(out.String()))
	case err != nil && !errors.As(err, &exit):
		t.Fatalf("run %s: %v", command[0], err)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// lookPath is the runtime's binary; the Makefile installs them (make
// parsing-test-deps).
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run make parsing-test-deps (it installs python3, a Java runtime, Node.js and Ruby from Debian)", name)
	}
	return p
}

func runtimeFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "runtimes", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// podDir is the folder of the fixture's pod on the logs volume.
func podDir(f *fixture) string {
	return filepath.Join(f.pods, f.pod.namespace+"_"+f.pod.name+"_"+f.pod.uid)
}

// sinkRecord is a received record with its stream.
type sinkRecord struct {
	otlpsink.LogRecord
	stream string
}

// containerRecords are the sink's records of one container.
func containerRecords(f *fixture, container string) []sinkRecord {
	var out []sinkRecord
	for _, r := range f.sink.Logs() {
		if r.Resource["k8s.container.name"] == container {
			stream, _ := r.Attributes["log.iostream"].(string)
			out = append(out, sinkRecord{r, stream})
		}
	}
	return out
}

// checkNoTemporaryAttributes: the attributes the operators use between
// them (fargate_otel.*) never reach a backend.
func checkNoTemporaryAttributes(t *testing.T, got []sinkRecord) {
	t.Helper()
	for _, r := range got {
		for k := range r.Attributes {
			if strings.HasPrefix(k, "fargate_otel.") {
				t.Errorf("record %q carries the operators' attribute %s", truncate(r.Body, 80), k)
				return
			}
		}
	}
}
