package collectorconfig_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
)

// generate is the app: GEN_LINES numbered lines on stdout and as many on
// stderr, at GEN_RATE lines per second in total, each one write.
func generate() int {
	n, _ := strconv.Atoi(os.Getenv("GEN_LINES"))
	rate, _ := strconv.Atoi(os.Getenv("GEN_RATE"))
	if pidfile := os.Getenv("GEN_PIDFILE"); pidfile != "" {
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	pad := strings.Repeat("x", 60)
	// Pace by the clock, two lines per step; after a pause (SIGSTOP) go on
	// at the rate rather than bursting to catch up.
	var step time.Duration
	if rate > 0 {
		step = time.Duration(float64(2*time.Second) / float64(rate))
	}
	next := time.Now()
	for i := 0; i < n; i++ {
		_, _ = fmt.Fprintf(os.Stdout, "seq=%06d stream=stdout %s\n", i, pad)
		_, _ = fmt.Fprintf(os.Stderr, "seq=%06d stream=stderr %s\n", i, pad)
		if step > 0 {
			next = next.Add(step)
			now := time.Now()
			if late := now.Sub(next); late > 100*time.Millisecond {
				next = now
			}
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(wait)
			}
		}
	}
	return 0
}

// app is the wrapper running the generator, as the injector wraps a container.
type app struct {
	cmd     *exec.Cmd
	pidfile string
	done    chan error
	logDir  string // <pods>/<ns>_<pod>_<uid>/<container>
}

func startApp(t *testing.T, f *fixture, lines, rate int, maxSize string) *app {
	t.Helper()
	return startAppWith(t, f, appOptions{lines: lines, rate: rate, maxSize: maxSize})
}

// appOptions are the generator's lines (per stream) and rate, and the
// wrapper's rotation size, further flags and passthrough (default: none).
type appOptions struct {
	lines, rate    int
	maxSize        string
	wrapperFlags   []string
	stdout, stderr io.Writer
}

func startAppWith(t *testing.T, f *fixture, o appOptions) *app {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "generator.pid")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--log-dir", f.pods, "--container", "app",
		"--namespace", f.pod.namespace, "--pod", f.pod.name, "--pod-uid", f.pod.uid,
		"--max-size", o.maxSize, "--max-backups", "10000", "--budget", "1Gi",
	}
	args = append(append(args, o.wrapperFlags...), "--", self)
	cmd := exec.Command(teeBinary(t), args...)
	cmd.Stdout, cmd.Stderr = o.stdout, o.stderr
	cmd.Env = append(os.Environ(), generatorEnv+"=1",
		"GEN_LINES="+strconv.Itoa(o.lines), "GEN_RATE="+strconv.Itoa(o.rate), "GEN_PIDFILE="+pidfile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &app{cmd: cmd, pidfile: pidfile, done: make(chan error, 1),
		logDir: filepath.Join(f.pods, f.pod.namespace+"_"+f.pod.name+"_"+f.pod.uid, "app")}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if pid := a.generatorPid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return a
}

func (a *app) generatorPid() int {
	b, err := os.ReadFile(a.pidfile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

func (a *app) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("the wrapped app failed: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("the wrapped app did not finish within %s", timeout)
	}
}

var backupName = regexp.MustCompile(`^\d+\.log\.\d{8}-\d{6}$`)

func countBackups(t *testing.T, dir string) int {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if backupName.MatchString(e.Name()) {
			n++
		}
	}
	return n
}

// waitCheckpoint waits until file_log has saved its offsets twice more (the
// mtime of its file_storage file changes twice): a checkpoint then covers
// everything the sink has received.
func waitCheckpoint(t *testing.T, stateDir string) {
	t.Helper()
	// The file is named after the receiver's type, filelog at v0.159.0
	// (file_log is its new name).
	matches, _ := filepath.Glob(filepath.Join(stateDir, "receiver_file*log_"))
	if len(matches) != 1 {
		entries, _ := os.ReadDir(stateDir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("file_log's storage file in %s: found %v among %v", stateDir, matches, names)
	}
	mtime := func() time.Time {
		st, err := os.Stat(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		return st.ModTime()
	}
	for range 2 {
		before := mtime()
		pollUntil(t, 10*time.Second, "file_log to save its offsets", func() bool { return !mtime().Equal(before) })
	}
}

// TestLogsExactlyOnceThroughRotationAndRestart: N numbered lines on each
// stream, rotated every 32 KiB; the collector is SIGKILLed mid-stream while
// the app goes on writing and rotating, then restarted. Every line the
// wrapper wrote arrives exactly once, with its stream, body, timestamp and
// the pod's resource attributes, including lines read from rotated backups.
func TestLogsExactlyOnceThroughRotationAndRestart(t *testing.T) {
	f := newFixture(t, nil)
	const lines = 4000 // per stream
	collector := f.startCollector()
	a := startApp(t, f, lines, 4000, "32Ki")

	pollUntil(t, 60*time.Second, "a third of the lines at the sink", func() bool { return f.sink.LogCount() >= 2*lines/3 })

	// Hold the app so that the collector catches up and saves its offsets:
	// then the kill neither loses nor repeats anything.
	gen := a.generatorPid()
	if gen == 0 {
		t.Fatal("no generator pid")
	}
	if err := syscall.Kill(gen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The files are re-read on every check: the wrapper may still be writing
	// what the app printed just before it stopped.
	pollUntil(t, 30*time.Second, "the sink to catch up with the files", func() bool {
		return missingAtSink(f, readCRIFiles(t, a.logDir)) == 0
	})
	waitCheckpoint(t, f.state)
	collector.Kill()
	firstRun := collector
	atKill := f.sink.LogCount()
	backupsAtKill := countBackups(t, a.logDir)

	// The app goes on, and its log rotates, while the collector is down.
	if err := syscall.Kill(gen, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 30*time.Second, "two rotations while the collector is down", func() bool {
		return countBackups(t, a.logDir) >= backupsAtKill+2
	})
	collector = f.startCollector()
	files := finish(t, f, a, collector)
	t.Logf("%d lines in %d files (%d backups), %d at the sink before the kill, %d after",
		len(files), countBackups(t, a.logDir)+1, countBackups(t, a.logDir), atKill, f.sink.LogCount())

	checkExactlyOnce(t, f, files, lines)
	// Rotation, the kill and the restart must not make the collector
	// complain: the rotated files are ordinary input.
	for _, run := range []*collectortest.Process{firstRun, collector} {
		for _, line := range strings.Split(run.Logs(), "\n") {
			if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) {
				t.Errorf("collector: %s", line)
			}
		}
	}
}

// TestLogsSurviveACrashUnderLoad: the collector is SIGKILLed at an arbitrary
// moment while lines stream in. Nothing may be lost; lines exported in the
// moment before the kill whose offsets were not saved yet are sent again
// (at-least-once), and the count of such repeats is reported.
func TestLogsSurviveACrashUnderLoad(t *testing.T) {
	f := newFixture(t, nil)
	const lines = 4000
	collector := f.startCollector()
	a := startApp(t, f, lines, 4000, "32Ki")
	pollUntil(t, 60*time.Second, "half of the lines at the sink", func() bool { return f.sink.LogCount() >= lines })
	collector.Kill()
	collector = f.startCollector()
	files := finish(t, f, a, collector)
	seen := map[string]int{}
	for _, r := range f.sink.Logs() {
		seen[r.Attributes["log.iostream"].(string)+" "+r.Body]++
	}
	dups := 0
	for _, l := range files {
		switch n := seen[l.stream+" "+l.text]; {
		case n == 0:
			t.Errorf("lost: %s %q", l.stream, l.text)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("crash under load: %d lines, %d repeated after the restart", len(files), dups)
}

// missingAtSink counts the lines of files that the sink has not received.
// finish waits for the app to end and for every line of its files to reach
// the sink, then stops the collector cleanly, which drains the exporter's
// queue (a duplicate would show now), and returns the files' lines.
func finish(t *testing.T, f *fixture, a *app, collector *collectortest.Process) []criLine {
	t.Helper()
	a.wait(t, 2*time.Minute)
	files := readCRIFiles(t, a.logDir)
	pollUntil(t, 60*time.Second, "every line at the sink", func() bool { return missingAtSink(f, files) == 0 })
	if err := collector.Stop(30 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	return files
}

func missingAtSink(f *fixture, files []criLine) int {
	got := map[string]bool{}
	for _, r := range f.sink.Logs() {
		stream, _ := r.Attributes["log.iostream"].(string)
		got[stream+" "+r.Body] = true
	}
	n := 0
	for _, l := range files {
		if !got[l.stream+" "+l.text] {
			n++
		}
	}
	return n
}

func checkExactlyOnce(t *testing.T, f *fixture, files []criLine, lines int) {
	t.Helper()
	// The wrapper wrote every line of the app, once, complete.
	want := map[string]criLine{}
	for _, l := range files {
		if l.tag != "F" {
			t.Fatalf("unexpected partial line in %s: %+v", l.file, l)
		}
		key := l.stream + " " + l.text
		if _, dup := want[key]; dup {
			t.Fatalf("the wrapper wrote %q twice", key)
		}
		want[key] = l
	}
	for i := 0; i < lines; i++ {
		for _, s := range []string{"stdout", "stderr"} {
			key := fmt.Sprintf("%s seq=%06d stream=%s %s", s, i, s, strings.Repeat("x", 60))
			if _, ok := want[key]; !ok {
				t.Fatalf("the wrapper's files lack %q", key)
			}
		}
	}

	wantRes := map[string]any{
		"k8s.pod.name":                f.pod.name,
		"k8s.pod.uid":                 f.pod.uid,
		"k8s.namespace.name":          f.pod.namespace,
		"k8s.node.name":               f.pod.node,
		"k8s.container.name":          "app",
		"k8s.container.restart_count": "0",
		"k8s.cluster.name":            clusterName,
		"cloud.provider":              "aws",
		"cloud.platform":              "aws_eks",
	}
	got := map[string]int{}
	fromBackup := 0
	for _, r := range f.sink.Logs() {
		stream, _ := r.Attributes["log.iostream"].(string)
		key := stream + " " + r.Body
		got[key]++
		l, ok := want[key]
		if !ok {
			t.Errorf("a record that the wrapper never wrote: %q", key)
			continue
		}
		if got[key] > 1 {
			t.Errorf("twice: %q", key)
		}
		if !r.Timestamp.Equal(l.time) {
			t.Errorf("%q: timestamp %s, the file says %s", key, r.Timestamp, l.time)
		}
		for k, v := range wantRes {
			if r.Resource[k] != v {
				t.Errorf("%q: resource %s = %v, want %v", key, k, r.Resource[k], v)
			}
		}
		path, _ := r.Attributes["log.file.path"].(string)
		if !strings.HasPrefix(path, containerDir(f)) {
			t.Errorf("%q: log.file.path %q is not in the container's folder", key, path)
		}
		if backupName.MatchString(filepath.Base(path)) {
			fromBackup++
		}
	}
	missing := 0
	for key := range want {
		if got[key] == 0 {
			missing++
			if missing <= 10 {
				t.Errorf("lost: %q", key)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d lines lost", missing, len(want))
	}
	if fromBackup == 0 {
		t.Error("no line was read from a rotated backup: the restart did not exercise rotation")
	}
	t.Logf("%d lines exactly once, %d of them read from rotated backups", len(want), fromBackup)
}

// containerDir is the folder of the app container's logs.
func containerDir(f *fixture) string {
	return filepath.Join(f.pods, f.pod.namespace+"_"+f.pod.name+"_"+f.pod.uid, "app") + "/"
}
