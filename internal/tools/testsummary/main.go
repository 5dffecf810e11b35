// Command testsummary reads `go test -json` on stdin, prints the output of
// failed tests and package build errors, and ends with one line:
// "N passed, N failed, N skipped". It exits non-zero when anything failed, so
// that a Makefile can pipe go test into it and still fail the build.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	verbose := len(os.Args) > 1 && os.Args[1] == "-v"
	s := summarize(os.Stdin, os.Stdout, verbose)
	fmt.Printf("%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	if s.failed > 0 || s.badPackages > 0 {
		os.Exit(1)
	}
}

type summary struct {
	passed, failed, skipped, badPackages int
}

// summarize keeps each test's output until the test ends and prints it only
// when the test failed; package-level output (build errors, panics outside a
// test) is printed when the package fails.
func summarize(r io.Reader, out io.Writer, verbose bool) summary {
	w := errWriter{out}
	var s summary
	outputs := map[string]*strings.Builder{}
	key := func(e event) string { return e.Package + "\x00" + e.Test }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// go test prints build failures as plain text before the JSON.
			w.print(string(line) + "\n")
			continue
		}
		k := key(e)
		switch e.Action {
		case "output":
			b := outputs[k]
			if b == nil {
				b = &strings.Builder{}
				outputs[k] = b
			}
			b.WriteString(e.Output)
			if verbose && e.Test == "" {
				w.print(e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				switch e.Action {
				case "fail":
					s.badPackages++
					if b := outputs[k]; b != nil {
						w.print(b.String())
					}
				case "skip":
					// go test says "skip" for a package without test files:
					// nothing was skipped, so the line must not read SKIP.
					w.print(fmt.Sprintf("---- %s (no test files)\n", e.Package))
				default:
					w.print(fmt.Sprintf("PASS %s (%.1fs)\n", e.Package, e.Elapsed))
				}
				delete(outputs, k)
				continue
			}
			switch e.Action {
			case "pass":
				s.passed++
			case "skip":
				s.skipped++
				if b := outputs[k]; b != nil && verbose {
					w.print(b.String())
				}
			case "fail":
				s.failed++
				if b := outputs[k]; b != nil {
					w.print(b.String())
				}
			}
			delete(outputs, k)
		}
	}
	// Tests that never ended (a panic or a timeout killed the binary).
	keys := make([]string, 0, len(outputs))
	for k := range outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasSuffix(k, "\x00") {
			continue
		}
		w.print(outputs[k].String())
	}
	return s
}

// errWriter writes a report to a terminal or a pipe; a failed write cannot be
// reported anywhere better, so it is dropped.
type errWriter struct{ w io.Writer }

func (e errWriter) print(s string) { _, _ = io.WriteString(e.w, s) }
