package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/tee/follow/kubelettest"
)

// writeSteadily writes n lines "<prefix> <i>" to the container's newest run,
// one every millisecond, with every 10th write a batch of five lines that
// share one time (containerd can stamp lines alike): the resume must drop
// exactly the lines it has at its last time.
func writeSteadily(k *kubelettest.Kubelet, container, prefix string, n int) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; {
			if i%50 == 0 && i+5 <= n {
				at := time.Now()
				var batch []kubelettest.Line
				for j := 0; j < 5; j++ {
					batch = append(batch, kubelettest.Line{At: at, Text: fmt.Sprintf("%s %d", prefix, i+j)})
				}
				k.WriteLines(container, batch...)
				i += 5
			} else {
				k.Write(container, fmt.Sprintf("%s %d", prefix, i))
				i++
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return done
}

func TestFollowExactlyOnceAcrossKill9(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	const n = 4000
	done := writeSteadily(k, "app", "line", n)
	// Rotation at 64 KiB: the kills also land between rotations.
	argv := args(k, dir, "app", "--max-size", "64Ki", "--max-backups", "1000", "--budget", "1Gi")
	f := start(t, followBin, argv...)
	for _, at := range []int{300, 1200, 2500} {
		haveLines(t, dir, "app", 0, at)
		f.kill9(t)
		f = start(t, followBin, argv...)
	}
	<-done
	k.Exit("app", false)
	haveLines(t, dir, "app", 0, n)
	if code, _ := f.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	got, notices := texts(runLines(t, dir, "app", 0))
	exactly(t, "the lines across three kill -9", got, numbered("line", 0, n))
	if len(notices) != 0 {
		t.Errorf("notices in the file: %q", notices)
	}
	backups, _ := filepath.Glob(filepath.Join(containerDir(dir, "app"), "0.log.*"))
	if len(backups) < 3 {
		t.Errorf("%d rotated files: the test meant to resume across rotations", len(backups))
	}
}

func TestFollowContainerRestarts(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", numbered("run0", 0, 100)...)
	argv := args(k, dir, "app")
	f := start(t, followBin, argv...)
	haveLines(t, dir, "app", 0, 100)

	// The follower is away while run 0 writes its last lines, dies, and
	// run 1 starts: run 0's tail comes from previous=true.
	f.kill9(t)
	k.Write("app", numbered("run0", 100, 150)...)
	k.Exit("app", true)
	k.Start("app")
	k.Write("app", numbered("run1", 0, 30)...)
	f = start(t, followBin, argv...)
	haveLines(t, dir, "app", 1, 30)
	got, _ := texts(runLines(t, dir, "app", 0))
	exactly(t, "run 0 after its restart", got, numbered("run0", 0, 150))

	// Live: run 1 dies, waits in a crash loop a while (the status names the
	// dead run as lastState and as the newest), then run 2 starts.
	k.Write("app", numbered("run1", 30, 60)...)
	k.Exit("app", true)
	before := len(k.Requests())
	eventually(t, "the follower to see the crash loop", func() bool { return len(k.Requests()) > before+3 })
	k.Start("app")
	k.Write("app", numbered("run2", 0, 40)...)
	haveLines(t, dir, "app", 2, 40)
	got, _ = texts(runLines(t, dir, "app", 1))
	exactly(t, "run 1", got, numbered("run1", 0, 60))
	got, _ = texts(runLines(t, dir, "app", 2))
	exactly(t, "run 2", got, numbered("run2", 0, 40))

	// Two restarts while the follower is away: run 2's tail is gone from the
	// kubelet, and the file says so; runs 3 and 4 are read whole.
	f.kill9(t)
	k.Write("app", numbered("run2", 40, 45)...)
	k.Exit("app", true)
	k.Start("app")
	k.Write("app", numbered("run3", 0, 10)...)
	k.Exit("app", true)
	k.Start("app")
	k.Write("app", numbered("run4", 0, 10)...)
	f = start(t, followBin, argv...)
	haveLines(t, dir, "app", 4, 10)
	got, notices := texts(runLines(t, dir, "app", 2))
	exactly(t, "run 2 (its tail lost)", got, numbered("run2", 0, 40))
	if len(notices) != 1 || !strings.Contains(notices[0], "the rest of this log (restart 2") {
		t.Errorf("run 2's file does not say its tail is lost: %q", notices)
	}
	got, _ = texts(runLines(t, dir, "app", 3))
	exactly(t, "run 3", got, numbered("run3", 0, 10))
	k.Exit("app", false)
	if code, _ := f.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// A stream that does not end when its run stops (a hung proxy) does not
// hide the restart: the status, read now and then, shows it.
func TestFollowNoticesARestartBehindAHungStream(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", numbered("run0", 0, 10)...)
	f := start(t, followBin, args(k, dir, "app", "--poll-interval", "200ms")...)
	haveLines(t, dir, "app", 0, 10)
	k.HangOpenStreams()
	k.Write("app", numbered("run0", 10, 20)...)
	k.Exit("app", true)
	k.Start("app")
	k.Write("app", numbered("run1", 0, 10)...)
	haveLines(t, dir, "app", 1, 10)
	got, _ := texts(runLines(t, dir, "app", 0))
	exactly(t, "run 0", got, numbered("run0", 0, 20))
	if !strings.Contains(f.stderr.String(), "its log stream did not end") {
		t.Errorf("the hung stream is not logged: %s", f.stderr.String())
	}
	k.Exit("app", false)
	f.stop(t)
}

func TestFollowReconnectsWhenTheStreamBreaks(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.BreakStreams(97)
	const n = 1500
	done := writeSteadily(k, "app", "line", n)
	f := start(t, followBin, args(k, dir, "app")...)
	<-done
	haveLines(t, dir, "app", 0, n)
	k.BreakStreams(0)
	k.Exit("app", false)
	if code, _ := f.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	got, _ := texts(runLines(t, dir, "app", 0))
	exactly(t, "the lines across broken streams", got, numbered("line", 0, n))
	streams := 0
	for _, r := range k.Requests() {
		if strings.Contains(r, "/containerLogs/") {
			streams++
		}
	}
	if streams < n/97 {
		t.Errorf("%d streams for %d lines broken every 97: the test did not break them", streams, n)
	}
	if !strings.Contains(f.stderr.String(), "the log stream broke") {
		t.Errorf("the breaks are not logged: %s", f.stderr.String())
	}
}

func TestFollowRefusalsAreLoggedOnceAndRetriedSlowly(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", numbered("line", 0, 10)...)
	k.Refuse(403, 403, 403, 403)
	f := start(t, followBin, args(k, dir, "app", "--retry-max", "300ms")...)
	haveLines(t, dir, "app", 0, 10)
	logs := f.stderr.String()
	if c := strings.Count(logs, "the node proxy refused the request (403)"); c != 1 {
		t.Errorf("the refusal is logged %d times, want once:\n%s", c, logs)
	}
	if !strings.Contains(logs, "it serves a pod's own logs only") {
		t.Errorf("the log does not say what to do: %s", logs)
	}
	refused := 0
	for _, r := range k.Requests() {
		if strings.HasPrefix(r, "403 ") {
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d refused requests, want 4", refused)
	}

	// The token rotates: the next requests carry the new one.
	if err := k.SetToken("token-2"); err != nil {
		t.Fatal(err)
	}
	k.Exit("app", true)
	k.Start("app")
	k.Write("app", numbered("after rotation", 0, 5)...)
	haveLines(t, dir, "app", 1, 5)
	k.Exit("app", false)
	for _, r := range k.Requests() {
		if strings.HasPrefix(r, "401 ") {
			t.Errorf("a request with an old token: %s", r)
		}
	}
	if code, _ := f.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// The refusals are retried no sooner than --retry-max apart: timed by the
// fake, a lower bound the follower cannot beat however loaded the machine.
func TestFollowRefusalWaitsRetryMax(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", "x")
	k.Refuse(429, 429, 429)
	begin := time.Now()
	f := start(t, followBin, args(k, dir, "app", "--retry-max", "400ms")...)
	haveLines(t, dir, "app", 0, 1)
	if d := time.Since(begin); d < 3*400*time.Millisecond {
		t.Errorf("three refusals retried within %v: not slowly (--retry-max 400ms)", d)
	}
	k.Exit("app", false)
	f.stop(t)
}

func TestFollowDrainsOnSIGTERM(t *testing.T) {
	t.Run("the container exited: its log is read to the end", func(t *testing.T) {
		k := newKubelet(t)
		dir := t.TempDir()
		k.Start("app")
		k.Start("side")
		f := start(t, followBin, args(k, dir, "app,side")...)
		k.Write("side", "side 0")
		haveLines(t, dir, "side", 0, 1)
		// The app writes its last lines and exits as the pod stops; the
		// follower gets SIGTERM at once, as a native sidecar does.
		k.Write("app", numbered("last", 0, 2000)...)
		k.Exit("app", false)
		k.Exit("side", false)
		code, took := f.stop(t)
		if code != 0 {
			t.Errorf("exit %d", code)
		}
		got, _ := texts(runLines(t, dir, "app", 0))
		exactly(t, "the app's last lines", got, numbered("last", 0, 2000))
		if took > 4*time.Second {
			t.Errorf("took %v to stop though every container had exited", took)
		}
	})
	t.Run("a container still runs: the drain timeout ends it", func(t *testing.T) {
		k := newKubelet(t)
		dir := t.TempDir()
		k.Start("app")
		f := start(t, followBin, args(k, dir, "app", "--drain-timeout", "1s")...)
		k.Write("app", "still running")
		haveLines(t, dir, "app", 0, 1)
		code, took := f.stop(t)
		if code != 0 {
			t.Errorf("exit %d", code)
		}
		if took < time.Second {
			t.Errorf("stopped after %v, before the drain timeout, with the container running", took)
		}
		if !strings.Contains(f.stderr.String(), "the drain timeout passed") {
			t.Errorf("the early stop is not logged: %s", f.stderr.String())
		}
	})
}

// What the kubelet lost while the follower was away (its log rotated past
// the last line written) is said in the file.
func TestFollowSaysWhatTheKubeletRotatedAway(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", numbered("line", 0, 10)...)
	argv := args(k, dir, "app")
	f := start(t, followBin, argv...)
	haveLines(t, dir, "app", 0, 10)
	f.kill9(t)
	k.Write("app", numbered("line", 10, 20)...)
	k.Rotate("app")
	k.Write("app", numbered("line", 20, 30)...)
	f = start(t, followBin, argv...)
	haveLines(t, dir, "app", 0, 20)
	got, notices := texts(runLines(t, dir, "app", 0))
	exactly(t, "the lines the kubelet still had", got, append(numbered("line", 0, 10), numbered("line", 20, 30)...))
	if len(notices) != 1 || !strings.Contains(notices[0], "may be missing") {
		t.Errorf("the gap is not in the file: %q", notices)
	}
	k.Exit("app", false)
	f.stop(t)
}

var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [PF] `)

// The follower writes what the wrapper writes, where the wrapper writes it:
// the same folders and modes, names, rotation and line format. Run through
// fargate-otel-tee follow, as the injector runs it.
func TestFollowLayoutEqualsTheWrapper(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("0123456789", 5000) // 50000 bytes: P pieces
	lines := append(numbered("line", 0, 300), long)
	k.Start("followed")
	k.Write("followed", lines...)
	f := start(t, teeBin, append([]string{"follow"}, args(k, dir, "followed", "--max-size", "20Ki", "--max-backups", "100")...)...)

	// The wrapper writes the same lines for a wrapped container.
	script := filepath.Join(t.TempDir(), "lines")
	if err := os.WriteFile(script, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := start(t, teeBin, "--log-dir", dir, "--namespace", testNamespace, "--pod", testPod, "--pod-uid", testUID,
		"--container", "wrapped", "--max-size", "20Ki", "--max-backups", "100", "--", "cat", script)
	<-wrapper.done
	haveLines(t, dir, "followed", 0, len(lines))
	k.Exit("followed", false)
	f.stop(t)

	for _, c := range []string{"wrapped", "followed"} {
		got, _ := texts(runLines(t, dir, c, 0))
		exactly(t, c, got, lines)
	}
	shape := func(c string) (names []string, modes []string) {
		cdir := containerDir(dir, c)
		entries, _ := os.ReadDir(cdir)
		backup := regexp.MustCompile(`^0\.log\.\d{8}-\d{6}$`)
		for _, e := range entries {
			name := e.Name()
			if backup.MatchString(name) {
				name = "0.log.<YYYYMMDD-HHMMSS>"
			}
			if len(names) == 0 || names[len(names)-1] != name {
				names = append(names, name)
			}
			info, _ := e.Info()
			modes = append(modes, info.Mode().String())
			b, _ := os.ReadFile(filepath.Join(cdir, e.Name()))
			for _, l := range strings.SplitAfter(string(b), "\n") {
				if l != "" && !criLine.MatchString(l) {
					t.Errorf("%s/%s: a line not in the wrapper's format: %.80q", c, e.Name(), l)
				}
			}
		}
		info, _ := os.Stat(cdir)
		modes = append(modes, "dir "+info.Mode().String())
		return names, uniq(modes)
	}
	wn, wm := shape("wrapped")
	fn, fm := shape("followed")
	if strings.Join(wn, " ") != strings.Join(fn, " ") || strings.Join(wm, " ") != strings.Join(fm, " ") {
		t.Errorf("the layouts differ:\n wrapper  %v %v\n follower %v %v", wn, wm, fn, fm)
	}
	if strings.Join(fn, " ") != "0.log 0.log.<YYYYMMDD-HHMMSS>" {
		t.Errorf("files %v: want 0.log and its rotated files", fn)
	}
	podDir, _ := os.Stat(filepath.Dir(containerDir(dir, "followed")))
	if podDir.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Errorf("pod folder mode %v", podDir.Mode())
	}
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Memory stays bounded whatever the lines: a 20 MiB line and 40 MB of
// lines go through a few MiB of buffers.
func TestFollowMemoryIsBounded(t *testing.T) {
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", strings.Repeat("y", 20<<20))
	f := start(t, followBin, args(k, dir, "app", "--max-size", "1Gi")...)
	var wg sync.WaitGroup
	wg.Go(func() {
		line := strings.Repeat("z", 999)
		for i := 0; i < 40; i++ {
			batch := make([]string, 1000)
			for j := range batch {
				batch[j] = strconv.Itoa(i*1000+j) + line
			}
			k.Write("app", batch...)
		}
	})
	wg.Wait()
	haveLines(t, dir, "app", 0, 40001)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", f.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
	hwm, _ := strconv.Atoi(string(m[1]))
	t.Logf("peak RSS of the follower: %d KiB", hwm)
	if hwm > 40<<10 {
		t.Errorf("peak RSS %d KiB after a 20 MiB line and 40 MB of lines: memory is not bounded", hwm)
	}
	k.Exit("app", false)
	f.stop(t)
}

func TestFollowBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--node-proxy: give the node proxy's URL"},
		{[]string{"--node-proxy", "http://x"}, "over https only"},
		{[]string{"--node-proxy", "https://x", "--node", "n", "--namespace", "a_b", "--pod", "p", "--pod-uid", "u", "--containers", "c"}, "--namespace \"a_b\""},
		{[]string{"--node-proxy", "https://x", "--node", "n", "--namespace", "a", "--pod", "p", "--pod-uid", "u"}, "--containers is missing"},
		{[]string{"stray"}, "unexpected argument"},
	} {
		f := start(t, teeBin, append([]string{"follow"}, tc.args...)...)
		<-f.done
		if code := f.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(f.stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %s", tc.args, code, f.stderr.String())
		}
	}
	// The environment stands in for the flags (the injector sets it).
	k := newKubelet(t)
	dir := t.TempDir()
	k.Start("app")
	k.Write("app", "from the environment")
	env := []string{"FARGATE_OTEL_NODE_PROXY=" + k.URL(), "FARGATE_OTEL_TOKEN_FILE=" + k.TokenFile, "FARGATE_OTEL_CA_FILE=" + k.CAFile,
		"FARGATE_OTEL_NODE=" + testNode, "FARGATE_OTEL_NAMESPACE=" + testNamespace, "FARGATE_OTEL_POD=" + testPod,
		"FARGATE_OTEL_POD_UID=" + testUID, "FARGATE_OTEL_CONTAINERS=app", "FARGATE_OTEL_LOG_DIR=" + dir,
		"FARGATE_OTEL_DRAIN_TIMEOUT=100ms"}
	g := startEnv(t, env, followBin)
	haveLines(t, dir, "app", 0, 1)
	if code, took := g.stop(t); code != 0 || took > 5*time.Second {
		t.Errorf("exit %d after %v with FARGATE_OTEL_DRAIN_TIMEOUT=100ms", code, took)
	}
}
