package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

// streamData makes a stream with binary bytes, empty lines, "\r\n", a 1 MiB
// line, and no newline at the end.
func streamData(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	var b bytes.Buffer
	for b.Len() < size {
		switch r.IntN(6) {
		case 0:
			for i := r.IntN(300); i > 0; i-- {
				b.WriteByte(byte(r.IntN(256)))
			}
		case 1:
			b.WriteString("\n\n")
		case 2:
			b.WriteString("windows line\r\n")
		default:
			b.WriteString(strings.Repeat("text ", r.IntN(50)) + "\n")
		}
	}
	b.Write(bytes.Repeat([]byte{'L'}, 1<<20))
	b.WriteString("\nthe end, no newline")
	return b.Bytes()
}

func TestPassthroughIsByteExactAndTheFileRoundTrips(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, errb := streamData(1, 3<<20), streamData(2, 2<<20)
	outFile, errFile := filepath.Join(dir, "out"), filepath.Join(dir, "err")
	if err := os.WriteFile(outFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(errFile, errb, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append(identity(logs), "--max-size", "1Gi", "--")
	r := wrapper(t, nil, append(args, helper("write", outFile, errFile, "7")...)...)
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr %q", r.code, r.stderr[:min(len(r.stderr), 500)])
	}
	if !bytes.Equal(r.stdout, out) {
		t.Fatalf("stdout differs: %d bytes passed through, %d written", len(r.stdout), len(out))
	}
	if !bytes.Equal(r.stderr, errb) {
		t.Fatalf("stderr differs: %d bytes passed through, %d written", len(r.stderr), len(errb))
	}
	lines := readCRI(t, logFile(logs, 0))
	// The file gives back the streams as containerd's file would: without
	// the '\r' of "\r\n" (passthrough above kept it).
	streams := crifile.Streams(lines)
	wantOut, wantErr := bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(errb, []byte("\r\n"), []byte("\n"))
	if !bytes.Equal(streams["stdout"], wantOut) || !bytes.Equal(streams["stderr"], wantErr) {
		t.Fatalf("the file does not give back the streams as containerd would: stdout %d/%d bytes, stderr %d/%d bytes",
			len(streams["stdout"]), len(wantOut), len(streams["stderr"]), len(wantErr))
	}
	for i, l := range lines {
		if len(l.Text) > 16*1024 {
			t.Fatalf("line %d has %d bytes of text: lines must be split at 16 KiB", i, len(l.Text))
		}
		if i > 0 && l.Time.Before(lines[i-1].Time) {
			t.Fatalf("line %d goes back in time", i)
		}
	}
	if last := lines[len(lines)-1]; !last.Partial {
		t.Fatalf("a last line without newline must be P, got %+v", last)
	}
}

func TestStdinModeTeesStdinToTheChosenStream(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	in := []byte("one\ntwo\nthree without newline")
	r := wrapper(t, in, append(identity(logs), "--stream", "stderr")...)
	if r.code != 0 || len(r.stdout) != 0 || !bytes.Equal(r.stderr, in) {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	lines := readCRI(t, logFile(logs, 0))
	if got := crifile.Streams(lines); !bytes.Equal(got["stderr"], in) || len(got["stdout"]) != 0 {
		t.Fatalf("file streams %q", got)
	}
}

func TestRestartNumbering(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	for i := 0; i < 3; i++ {
		r := wrapper(t, nil, append(identity(logs), "--", "sh", "-c", "echo run $0", strings.Repeat("x", i+1))...)
		if r.code != 0 {
			t.Fatalf("run %d: code %d, stderr %s", i, r.code, r.stderr)
		}
	}
	for i := 0; i < 3; i++ {
		lines := readCRI(t, logFile(logs, i))
		want := "run " + strings.Repeat("x", i+1)
		if len(lines) != 1 || string(lines[0].Text) != want {
			t.Fatalf("%d.log holds %+v, want one line %q", i, lines, want)
		}
	}
}

func TestMissingIdentityStillRunsTheApp(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	r := wrapper(t, nil, "--log-dir", logs, "--container", "app", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
	if r.code != 4 || string(r.stdout) != "out\n" {
		t.Fatalf("code %d, stdout %q", r.code, r.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(string(r.stderr), "\n"), "\n")
	if len(lines) != 2 || lines[1] != "err" || !strings.Contains(lines[0], "missing --namespace, --pod, --pod-uid") {
		t.Fatalf("stderr %q: want one warning naming what is missing, then the app's line", r.stderr)
	}
	if entries, _ := os.ReadDir(logs); len(entries) != 0 {
		t.Fatalf("a log was written without an identity: %v", entries)
	}
}

func TestNoLogVolumePassesThrough(t *testing.T) {
	t.Parallel()
	logs := filepath.Join(t.TempDir(), "not-mounted")
	r := wrapper(t, nil, append(identity(logs), "--", "sh", "-c", "echo out")...)
	if r.code != 0 || string(r.stdout) != "out\n" || !strings.Contains(string(r.stderr), "is the logs volume mounted") {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(logs); err == nil {
		t.Fatal("the wrapper created the missing log folder on the container's own disk")
	}
}

func TestBadFlagsStillRunTheApp(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	r := wrapper(t, nil, append(identity(logs), "--max-size", "ten", "--", "sh", "-c", "echo out; exit 5")...)
	if r.code != 5 || string(r.stdout) != "out\n" || !strings.Contains(string(r.stderr), "running the command without writing a log file") {
		t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Without a command, a bad flag is a usage error.
	r = wrapper(t, []byte{}, "--format", "json")
	if r.code != 2 || !strings.Contains(string(r.stderr), "use cri or raw") {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
}

func TestPodinfoFolderAndPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	podinfo := filepath.Join(dir, "podinfo")
	if err := os.Mkdir(podinfo, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"namespace": "from-file", "name": "pod-from-file", "uid": "aaaa-1111"} {
		if err := os.WriteFile(filepath.Join(podinfo, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"FARGATE_OTEL_POD=pod-from-env", "FARGATE_OTEL_CONTAINER=c-env"}
	r := wrapperEnv(t, env, nil, "--log-dir", logs, "--podinfo-dir", podinfo, "--namespace", "from-flag", "--", "sh", "-c", "echo hi")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %s", r.code, r.stderr)
	}
	want := filepath.Join(logs, "from-flag_pod-from-env_aaaa-1111", "c-env", "0.log")
	if lines := readCRI(t, want); len(lines) != 1 || string(lines[0].Text) != "hi" {
		t.Fatalf("%s: %+v", want, lines)
	}
}

func TestRawFormat(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	r := wrapper(t, nil, append(identity(logs), "--format", "raw", "--", "sh", "-c", "printf 'a\\nb\\nc'")...)
	if r.code != 0 {
		t.Fatalf("code %d, stderr %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(logFile(logs, 0))
	if err != nil || string(b) != "a\nb\nc" {
		t.Fatalf("raw file %q, %v", b, err)
	}
}

// The reader hands framed lines to the file's writer in batches (when a block
// is full, or some tens of milliseconds after the first): a command that
// writes a line and then stays quiet must still find it in the file while it
// runs, not only when it exits.
func TestLinesReachTheFileWhileTheCommandIsQuiet(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrapperBin, append(identity(logs), "--", "sh", "-c", "echo out; echo err >&2; read x; echo bye")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both lines in the file while the command waits for its input", func() bool {
		b, _ := os.ReadFile(logFile(logs, 0))
		return bytes.Contains(b, []byte(" stdout F out\n")) && bytes.Contains(b, []byte(" stderr F err\n"))
	})
	if b, _ := os.ReadFile(logFile(logs, 0)); bytes.Contains(b, []byte("bye")) {
		t.Fatal("the command went on before its input came")
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v, stderr %q", err, stderr.Bytes())
	}
	if stdout.String() != "out\nbye\n" || stderr.String() != "err\n" {
		t.Fatalf("passthrough: stdout %q, stderr %q", stdout.Bytes(), stderr.Bytes())
	}
	var texts []string
	for _, l := range readCRI(t, logFile(logs, 0)) {
		texts = append(texts, l.Stream+" "+string(l.Text))
	}
	if got := strings.Join(texts, "|"); got != "stdout out|stderr err|stdout bye" {
		t.Fatalf("file lines %q", got)
	}
}

// When our own stdout is gone, the command learns it as it would without
// us (EPIPE, with SIGPIPE ignored here), the wrapper neither dies of SIGPIPE
// nor stops logging, and the other stream still passes through.
func TestABrokenStdoutReachesTheCommandAndTheFileKeepsEverything(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	script := `trap "" PIPE; i=0; while echo line $i; do i=$((i+1)); done; echo "stdout broke after $i lines" >&2`
	cmd := exec.CommandContext(ctx, wrapperBin, append(identity(logs), "--", "sh", "-c", script)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	err = cmd.Run()
	_ = w.Close()
	if err != nil {
		t.Fatalf("%v (a wrapper killed by SIGPIPE exits 141), stderr %q", err, stderr.Bytes())
	}
	var wrote int
	if _, err := fmt.Sscanf(stderr.String()[strings.Index(stderr.String(), "stdout broke after "):], "stdout broke after %d lines", &wrote); err != nil {
		t.Fatalf("stderr %q: the command did not see its stdout break", stderr.Bytes())
	}
	// What was read is logged: a run of the first lines (what still sat in
	// the pipe when it was closed is the command's loss, as without us).
	lines := readCRI(t, logFile(logs, 0))
	n := 0
	for _, l := range lines {
		if l.Stream == "stdout" {
			if string(l.Text) != fmt.Sprintf("line %d", n) {
				t.Fatalf("stdout line %d in the file is %q", n, l.Text)
			}
			n++
		}
	}
	if n == 0 || n > wrote {
		t.Fatalf("%d stdout lines in the file, the command wrote %d", n, wrote)
	}
	last := lines[len(lines)-1]
	if last.Stream != "stderr" || !strings.HasPrefix(string(last.Text), "stdout broke after ") {
		t.Fatalf("the file does not end with the command's message: %+v", last)
	}
}
