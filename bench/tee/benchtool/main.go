// Command benchtool is the helper of bench/tee/run.sh: it makes the data,
// plays the command that alternates stdout and stderr, times runs with their
// peak memory, and counts order inversions and lines in CRI files.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/logrotate"
	"github.com/fargate-otel/fargate-otel/tee/crifile"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: benchtool gen|seq|time|inversions|check ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "gen":
		gen(args[0], args[1])
	case "seq":
		seq(args[0], args[1])
	case "paced":
		paced(args)
	case "pacedcpu":
		pacedCPU(args)
	case "time":
		timeRun(args[0], args[2:])
	case "inversions":
		inversions(args)
	case "check":
		check(args[0])
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "benchtool:", msg)
	os.Exit(2)
}

// gen writes SIZE bytes of 100-byte lines (99 characters and a newline).
func gen(size, path string) {
	n, err := logrotate.ParseSize(size)
	if err != nil {
		fail(err.Error())
	}
	f, err := os.Create(path)
	if err != nil {
		fail(err.Error())
	}
	w := bufio.NewWriterSize(f, 1<<20)
	pad := strings.Repeat("abcdefghij", 10)
	line := make([]byte, 0, 100)
	for i := int64(0); i*100 < n; i++ {
		line = strconv.AppendInt(append(line[:0], "line "...), i, 10)
		line = append(line, ' ')
		line = append(line, pad[:99-len(line)]...)
		line = append(line, '\n')
		if rest := n - i*100; rest < 100 {
			line = line[:rest]
		}
		_, _ = w.Write(line)
	}
	if err := w.Flush(); err != nil {
		fail(err.Error())
	}
	if err := f.Close(); err != nil {
		fail(err.Error())
	}
}

// seq writes N lines "seq <i>", even i to stdout and odd i to stderr, one
// write each, SPACING apart (0: flat out).
func seq(count, spacing string) {
	n, _ := strconv.Atoi(count)
	d, err := time.ParseDuration(spacing)
	if err != nil {
		fail(err.Error())
	}
	start := time.Now()
	buf := make([]byte, 0, 32)
	for i := 0; i < n; i++ {
		buf = strconv.AppendInt(append(buf[:0], "seq "...), int64(i), 10)
		buf = append(buf, '\n')
		fd := 1 + i%2
		if _, err := syscall.Write(fd, buf); err != nil {
			os.Exit(3)
		}
		if d > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * d)))
		}
	}
}

// paced is the app of make bench-bill: LINES lines of BYTES bytes (newline
// included), alternately on stdout and stderr, at RATE lines/s, flushed
// every millisecond. At the end it writes its own CPU time (nanoseconds) to
// CPUFILE, so that a caller can take it out of the whole job's.
func paced(args []string) {
	if len(args) != 4 {
		fail("usage: benchtool paced BYTES LINES RATE CPUFILE")
	}
	size, _ := strconv.Atoi(args[0])
	lines, _ := strconv.Atoi(args[1])
	rate, _ := strconv.Atoi(args[2])
	if size < 1 || lines < 1 || rate < 1 {
		fail("paced: BYTES, LINES and RATE must be whole numbers above 0")
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	pad := strings.Repeat("x", max(size-1-len("seq=00000000 "), 0))
	start := time.Now()
	buf := make([]byte, 0, size+16)
	for i := 0; i < lines; {
		due := min(lines, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			w := out
			if i%2 == 1 {
				w = errw
			}
			buf = fmt.Appendf(buf[:0], "seq=%08d %s\n", i, pad)
			_, _ = w.Write(buf)
		}
		_ = out.Flush()
		_ = errw.Flush()
		time.Sleep(time.Millisecond)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(err.Error())
	}
	if err := os.WriteFile(args[3], []byte(strconv.FormatInt(ru.Utime.Nano()+ru.Stime.Nano(), 10)), 0o644); err != nil {
		fail(err.Error())
	}
}

// pacedCPU runs CMD... with "benchtool paced BYTES LINES RATE CPUFILE"
// appended (the app), its stdout and stderr anonymous pipes that are read
// and discarded here, as containerd's shim reads a container's, and prints
// the CPU (user+sys) of the job less the app's own, per million lines:
// the wrapper's share of the Fargate bill (make bench-bill), or that of
// whatever CMD puts between the app and its output.
func pacedCPU(args []string) {
	if len(args) < 5 || args[3] != "--" {
		fail("usage: benchtool pacedcpu BYTES LINES RATE -- CMD...")
	}
	lines, _ := strconv.Atoi(args[1])
	dir, err := os.MkdirTemp("", "benchtool-paced-")
	if err != nil {
		fail(err.Error())
	}
	defer func() { _ = os.RemoveAll(dir) }()
	self, err := os.Executable()
	if err != nil {
		fail(err.Error())
	}
	cpuFile := filepath.Join(dir, "app-cpu")
	argv := append(append([]string(nil), args[4:]...), self, "paced", args[0], args[1], args[2], cpuFile)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // pipes, drained
	if err := cmd.Run(); err != nil {
		fail(fmt.Sprintf("%q: %v", argv, err))
	}
	b, err := os.ReadFile(cpuFile)
	if err != nil {
		fail("the app's CPU: " + err.Error())
	}
	app, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		fail("the app's CPU: " + err.Error())
	}
	job := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime() // with its reaped children
	fmt.Printf("cpu_s_per_mline=%.3f job_cpu_s=%.3f app_cpu_s=%.3f\n", (job-time.Duration(app)).Seconds()*1e6/float64(lines), job.Seconds(), time.Duration(app).Seconds())
}

// timeRun runs a command with inherited stdin, stdout and stderr, and
// writes its wall time and peak memory (VmHWM of the process itself, sampled
// until it exits, and ru_maxrss from wait4) to OUT.
func timeRun(out string, argv []string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fail(err.Error())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var hwm int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
loop:
	for {
		if v := vmHWM(status); v > hwm {
			hwm = v
		}
		select {
		case err = <-done:
			break loop
		case <-tick.C:
		}
	}
	elapsed := time.Since(start)
	if err != nil {
		fail(fmt.Sprintf("%q: %v", argv, err))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	// wait4 counts the process and the children it waited for: the whole job.
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res := fmt.Sprintf("seconds=%.4f cpu_seconds=%.4f hwm_kib=%d maxrss_kib=%d\n", elapsed.Seconds(), cpu.Seconds(), hwm, ru.Maxrss)
	if err := os.WriteFile(out, []byte(res), 0o644); err != nil {
		fail(err.Error())
	}
}

func vmHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// inversions reads "seq <i>" lines from CRI files (in the order given) and
// counts the pairs that are out of order, and the lines that come after a
// line with a higher number.
func inversions(paths []string) {
	var nums []int
	for _, p := range paths {
		for _, l := range readCRI(p) {
			if v, ok := strings.CutPrefix(string(l.Text), "seq "); ok {
				n, err := strconv.Atoi(v)
				if err == nil {
					nums = append(nums, n)
				}
			}
		}
	}
	misplaced, top := 0, -1
	for _, n := range nums {
		if n < top {
			misplaced++
		}
		top = max(top, n)
	}
	fmt.Printf("lines=%d inversions=%d misplaced=%d\n", len(nums), countInversions(nums), misplaced)
}

// countInversions counts pairs i<j with a[i] > a[j] by merge sort.
func countInversions(a []int) int64 {
	if len(a) < 2 {
		return 0
	}
	mid := len(a) / 2
	left, right := append([]int(nil), a[:mid]...), append([]int(nil), a[mid:]...)
	n := countInversions(left) + countInversions(right)
	i, j, k := 0, 0, 0
	for i < len(left) && j < len(right) {
		if left[i] <= right[j] {
			a[k] = left[i]
			i++
		} else {
			a[k] = right[j]
			j++
			n += int64(len(left) - i)
		}
		k++
	}
	k += copy(a[k:], left[i:])
	copy(a[k:], right[j:])
	return n
}

// check counts the app's lines and the lost-lines notices in every CRI file
// of a folder.
func check(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log*"))
	sort.Strings(files)
	lines, lost := 0, 0
	for _, f := range files {
		for _, l := range readCRI(f) {
			if strings.HasPrefix(string(l.Text), "fargate-otel-tee: ") {
				var n int
				if _, err := fmt.Sscanf(string(l.Text), "fargate-otel-tee: %d log lines were lost", &n); err == nil {
					lost += n
				}
				continue
			}
			lines++
		}
	}
	fmt.Printf("files=%d lines=%d lost=%d\n", len(files), lines, lost)
}

func readCRI(path string) []crifile.Line {
	f, err := os.Open(path)
	if err != nil {
		fail(err.Error())
	}
	defer func() { _ = f.Close() }()
	lines, err := crifile.Read(f)
	if err != nil {
		fail(path + ": " + err.Error())
	}
	return lines
}
