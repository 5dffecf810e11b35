package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runHelper is the test binary in the role of the wrapped command.
func runHelper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: no role given")
		return 2
	}
	switch args[0] {
	case "write":
		return helperWrite(args[1], args[2], args[3])
	case "seq":
		return helperSeq(args[1:])
	case "signals":
		return helperSignals()
	case "orphans":
		return helperOrphans(args[1])
	case "rate":
		return helperRate(args[1], args[2])
	case "diskfull":
		return helperDiskFull(args[1], args[2])
	case "tty":
		return helperTTY()
	case "burst":
		return helperBurst(args[1], args[2], args[3])
	}
	_, _ = fmt.Fprintf(os.Stderr, "helper: unknown role %q\n", args[0])
	return 2
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// helperWrite writes the contents of two files to stdout and stderr in
// interleaved chunks of pseudo-random sizes.
func helperWrite(outFile, errFile, seed string) int {
	out, err1 := os.ReadFile(outFile)
	errb, err2 := os.ReadFile(errFile)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err1, err2)
		return 2
	}
	r := uint32(atoi(seed))
	next := func() int {
		r = r*1664525 + 1013904223
		return int(r>>16)%(70<<10) + 1
	}
	for len(out) > 0 || len(errb) > 0 {
		n := min(next(), len(out))
		if _, err := os.Stdout.Write(out[:n]); err != nil {
			return 3
		}
		out = out[n:]
		n = min(next(), len(errb))
		if _, err := os.Stderr.Write(errb[:n]); err != nil {
			return 3
		}
		errb = errb[n:]
	}
	return 0
}

// helperSeq writes N lines "seq <i>" alternately to stdout (even i) and
// stderr (odd i), optionally spaced in time.
func helperSeq(args []string) int {
	n := atoi(args[0])
	var spacing time.Duration
	if len(args) > 1 {
		spacing, _ = time.ParseDuration(args[1])
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		f := os.Stdout
		if i%2 == 1 {
			f = os.Stderr
		}
		_, _ = fmt.Fprintf(f, "seq %d\n", i)
		if spacing > 0 {
			// Pace against the start, so that a late wake-up does not stretch the run.
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * spacing)))
		}
	}
	return 0
}

// handledSignals are the signals the wrapper must forward.
var handledSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// helperSignals reports every signal it gets on stdout, and exits after it
// got all of them (or after a minute).
func helperSignals() int {
	ch := make(chan os.Signal, 16)
	var list []os.Signal
	for _, s := range handledSignals {
		list = append(list, s)
	}
	signal.Notify(ch, list...)
	fmt.Println("ready")
	seen := map[os.Signal]bool{}
	timeout := time.After(time.Minute)
	for len(seen) < len(handledSignals) {
		select {
		case s := <-ch:
			seen[s] = true
			fmt.Printf("got %d\n", s.(syscall.Signal))
		case <-timeout:
			fmt.Println("timeout")
			return 1
		}
	}
	return 0
}

// helperOrphans, run as the child of the wrapper in a new PID namespace,
// leaves orphans behind (background processes of a shell that exits) and
// checks that PID 1, the wrapper, reaps them all.
func helperOrphans(count string) int {
	n := atoi(count)
	if os.Getppid() != 1 {
		fmt.Printf("my parent is %d, not PID 1\n", os.Getppid())
		return 2
	}
	script := strings.Repeat("sleep 0.2 & true & ", n) + "exit 0"
	if err := exec.Command("sh", "-c", script).Run(); err != nil {
		fmt.Println("sh:", err)
		return 2
	}
	// The shell is gone: its children now belong to PID 1.
	orphans, _ := processes()
	adopted := 0
	for _, p := range orphans {
		if p.ppid == 1 && p.pid != os.Getpid() {
			adopted++
		}
	}
	fmt.Printf("adopted %d\n", adopted)
	deadline := time.Now().Add(time.Minute)
	for {
		ps, err := processes()
		if err != nil {
			fmt.Println(err)
			return 2
		}
		var left []string
		for _, p := range ps {
			if p.pid != os.Getpid() && p.pid != 1 {
				left = append(left, fmt.Sprintf("%d(%s,%c)", p.pid, p.comm, p.state))
			}
		}
		if len(left) == 0 {
			fmt.Println("all reaped")
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Println("left:", strings.Join(left, " "))
			return 1
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type proc struct {
	pid, ppid int
	comm      string
	state     byte
}

func processes() ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < 0 || end+4 > len(s) {
			continue
		}
		fields := strings.Fields(s[end+2:])
		if len(fields) < 2 {
			continue
		}
		out = append(out, proc{pid: pid, ppid: atoi(fields[1]), comm: s[open+1 : end], state: fields[0][0]})
	}
	return out, nil
}

// helperRate writes N numbered lines of 100 bytes at a steady rate per second.
func helperRate(count, perSecond string) int {
	n, rate := atoi(count), atoi(perSecond)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	pad := strings.Repeat("r", 100-len("line 0000000 ")-1)
	start := time.Now()
	for i := 0; i < n; {
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			_, _ = fmt.Fprintf(w, "line %07d %s\n", i, pad)
		}
		if err := w.Flush(); err != nil {
			return 3
		}
		time.Sleep(time.Millisecond)
	}
	return 0
}

// helperDiskFull writes n lines at full speed, says so on stderr, then writes
// a "tick" line every 2 ms until stopFile exists, then 200 "final" lines.
func helperDiskFull(count, stopFile string) int {
	n := atoi(count)
	pad := strings.Repeat("d", 80)
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	for i := 0; i < n; i++ {
		_, _ = fmt.Fprintf(w, "fast %d %s\n", i, pad)
	}
	if w.Flush() != nil {
		return 3
	}
	fmt.Fprintln(os.Stderr, "fast done")
	for i := 0; ; i++ {
		if _, err := os.Stat(stopFile); err == nil {
			break
		}
		fmt.Printf("tick %d\n", i)
		time.Sleep(2 * time.Millisecond)
	}
	for i := 0; i < 200; i++ {
		_, _ = fmt.Fprintf(w, "final %d\n", i)
	}
	if w.Flush() != nil {
		return 3
	}
	return 0
}

// helperTTY says which of its streams are terminals.
func helperTTY() int {
	isTTY := func(f *os.File) bool {
		_, err := unixTermios(int(f.Fd()))
		return err == nil
	}
	fmt.Printf("stdin=%v stdout=%v stderr=%v\n", isTTY(os.Stdin), isTTY(os.Stdout), isTTY(os.Stderr))
	fmt.Fprintln(os.Stderr, "this went to stderr")
	return 0
}

// burstLine is line i of helperBurst: 100 bytes with its newline, or
// longSize bytes (in P pieces in the file) every longEvery lines.
func burstLine(i, longEvery int) string {
	const longSize = 40000
	size := 100
	if longEvery > 0 && i%longEvery == longEvery-1 {
		size = longSize
	}
	head := fmt.Sprintf("burst %07d ", i)
	return head + strings.Repeat("b", size-len(head)-1) + "\n"
}

// helperBurst writes n burst lines flat out, then, from 500 ms later, `after`
// lines "after <j>" 100 ms apart: the rate falls back under any budget of
// the tests, and any debt of a long line at the end of the burst is paid.
func helperBurst(count, longEvery, after string) int {
	n, every, m := atoi(count), atoi(longEvery), atoi(after)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for i := 0; i < n; i++ {
		_, _ = w.WriteString(burstLine(i, every))
	}
	if w.Flush() != nil {
		return 3
	}
	time.Sleep(400 * time.Millisecond)
	for j := 0; j < m; j++ {
		time.Sleep(100 * time.Millisecond)
		fmt.Printf("after %d\n", j)
	}
	return 0
}
