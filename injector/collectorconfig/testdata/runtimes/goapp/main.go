// Command goapp is the Go app of the multiline tests: numbered lines on
// stdout and stderr, and between them real Go panics, each from a child
// process (a panic ends a Go program) that writes to the same stderr while
// this process goes on writing stdout. It ends with a panic of its own.
//
//	goapp EXCEPTIONS LINES RATE       run
//	goapp -replay FILE EXCEPTIONS LINES RATE
//	                                  the same, printing FILE's reports
//	                                  (blocks between lines "=====") instead
//	                                  of panicking, a line at a time with a
//	                                  stdout line after each
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-child" {
		child(os.Args[2])
		return
	}
	args := os.Args[1:]
	var reports []string
	if len(args) == 5 && args[0] == "-replay" {
		data, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		reports = blocks(string(data))
		args = args[2:]
	}
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goapp [-replay FILE] EXCEPTIONS LINES RATE")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(args[0])
	lines, _ := strconv.Atoi(args[1])
	rate, _ := strconv.Atoi(args[2])
	// Each stream gets half of the rate.
	step := time.Duration(float64(2*time.Second) / float64(rate))

	var mu sync.Mutex
	outSeq := 0
	stdoutLine := func() {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "seq=%06d stream=stdout lang=go\n", outSeq)
		outSeq++
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := time.Now()
		for {
			select {
			case <-done:
				return
			default:
			}
			stdoutLine()
			next = pace(next, step)
		}
	}()
	replay := func(report string) {
		for _, l := range strings.Split(report, "\n") {
			fmt.Fprintln(os.Stderr, l)
			stdoutLine()
			time.Sleep(time.Millisecond)
		}
	}

	seq := 0
	next := time.Now()
	normal := func() {
		for range lines {
			fmt.Fprintf(os.Stderr, "seq=%06d stream=stderr lang=go\n", seq)
			seq++
			next = pace(next, step)
		}
	}
	for i := range n {
		normal()
		if reports != nil {
			replay(reports[i%len(reports)])
			continue
		}
		// The child writes its panic to our stderr; its exit status is
		// the panic's (2).
		cmd := exec.Command(os.Args[0], "-child", kinds[i%len(kinds)]+":"+strconv.Itoa(i))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
		if err := cmd.Run(); err == nil {
			fmt.Fprintln(os.Stderr, "the child did not panic")
			os.Exit(1)
		}
	}
	normal()
	close(done)
	wg.Wait()
	if reports != nil {
		replay(reports[n%len(reports)])
		os.Exit(1)
	}
	panic(fmt.Sprintf("boom-%d: the last report", n))
}

var kinds = []string{"panic", "nil", "repanic", "deadlock", "error"}

type order struct{ qty *int }

// child dies the way KIND says.
func child(arg string) {
	kind, id, _ := strings.Cut(arg, ":")
	if kind == "deadlock" {
		// fatal error: all goroutines are asleep - deadlock!
		select {}
	}
	// Other goroutines, so that GOTRACEBACK=all prints several dumps
	// separated by empty lines.
	for range 2 {
		go func() { time.Sleep(time.Hour) }()
	}
	time.Sleep(10 * time.Millisecond)
	switch kind {
	case "panic":
		panic("boom-" + id)
	case "nil":
		var o order
		fmt.Fprintln(os.Stdout, *o.qty)
	case "repanic":
		defer func() {
			r := recover()
			panic(fmt.Sprintf("boom-%s: again after %v", id, r))
		}()
		panic("boom-" + id)
	case "error":
		panic(fmt.Errorf("boom-%s: %w", id, errors.New("wrapped")))
	}
}

func pace(next time.Time, step time.Duration) time.Time {
	next = next.Add(step)
	if wait := time.Until(next); wait > 0 {
		time.Sleep(wait)
	}
	return next
}

// blocks are the reports of a replay file: the text between lines
// "=====", without the header lines starting with "#".
func blocks(data string) []string {
	var out []string
	for _, b := range strings.Split(data, "\n=====\n") {
		var keep []string
		for _, l := range strings.Split(strings.Trim(b, "\n"), "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		if len(keep) > 0 {
			out = append(out, strings.Join(keep, "\n"))
		}
	}
	return out
}
