package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var leftOutRe = regexp.MustCompile(`^fargate-otel-tee: (\d+) log lines \((\d+) bytes\) were left out of this file since \S+: over the log rate limit \((.+)\); they still passed through to stdout and stderr`)

// A burst over the budget is cut at the budget in the file, passes through
// complete, is reported in one line with the right counts, and the lines
// after it are written.
func TestRateLimitCutsTheFileNeverThePassthrough(t *testing.T) {
	const (
		burst     = 20000
		longEvery = 1000 // every 1000th line is 40000 bytes: P pieces in the file
		after     = 20
	)
	for _, tc := range []struct {
		name  string
		flags []string
		env   []string
		// budget: what may be in the file t seconds after the first line.
		budget func(t float64) (lines, bytes float64)
		limit  string
	}{{
		name:   "lines, from the flags",
		flags:  []string{"--rate-limit-lines", "1000", "--rate-limit-lines-burst", "5000"},
		budget: func(t float64) (float64, float64) { return 5000 + 1000*t, -1 },
		limit:  "1000 lines/s, burst 5000",
	}, {
		name:   "bytes, from the environment",
		env:    []string{"FARGATE_OTEL_RATE_LIMIT_BYTES=100KiB", "FARGATE_OTEL_RATE_LIMIT_BYTES_BURST=512Ki"},
		budget: func(t float64) (float64, float64) { return -1, 512<<10 + 100<<10*t },
		limit:  "100Ki/s, burst 512Ki",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			logs := t.TempDir()
			args := append(append(identity(logs), tc.flags...), "--")
			res := wrapperEnv(t, tc.env, nil, append(args, helper("burst", strconv.Itoa(burst), strconv.Itoa(longEvery), strconv.Itoa(after))...)...)
			if res.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
			}
			var want strings.Builder
			for i := 0; i < burst; i++ {
				want.WriteString(burstLine(i, longEvery))
			}
			for j := 0; j < after; j++ {
				fmt.Fprintf(&want, "after %d\n", j)
			}
			if string(res.stdout) != want.String() {
				t.Fatalf("passthrough is not complete: %d bytes, want %d", len(res.stdout), want.Len())
			}
			if !strings.Contains(string(res.stderr), "the log rate limit is reached") {
				t.Errorf("nothing said on stderr about the rate limit: %s", res.stderr)
			}

			lines := readCRI(t, logFile(logs, 0))
			var (
				t0                    time.Time
				kept, keptBytes       float64
				next                  int // the burst lines must come in order
				reports, leftLines    int
				leftBytes, afterLines int
				reportAt, lastBurstAt int
				text                  []byte
			)
			inFile := map[int]bool{}
			for idx, l := range lines {
				if m := leftOutRe.FindStringSubmatch(string(l.Text)); m != nil && l.Stream == "stderr" {
					reports++
					leftLines, _ = strconv.Atoi(m[1])
					leftBytes, _ = strconv.Atoi(m[2])
					reportAt = idx
					if m[3] != tc.limit {
						t.Errorf("the report names the limit %q, want %q", m[3], tc.limit)
					}
					continue
				}
				if l.Stream != "stdout" {
					t.Fatalf("unexpected line %q on %s", l.Text, l.Stream)
				}
				text = append(text, l.Text...)
				if l.Partial {
					continue // the rest of the line follows
				}
				line := string(text) + "\n"
				text = text[:0]
				if strings.HasPrefix(line, "after ") {
					afterLines++
					continue
				}
				i, err := strconv.Atoi(line[len("burst ") : len("burst ")+7])
				if err != nil || i < next || line != burstLine(i, longEvery) {
					t.Fatalf("line %d of the file is not a whole burst line in order (after %d): %.60q", idx, next, line)
				}
				next = i + 1
				inFile[i] = true
				lastBurstAt = idx
				if t0.IsZero() {
					t0 = l.Time
				}
				kept++
				keptBytes += float64(len(line))
				// The budget holds at every line: the burst plus the rate since the first.
				maxLines, maxBytes := tc.budget(l.Time.Sub(t0).Seconds())
				if maxLines >= 0 && kept > maxLines+1 {
					t.Fatalf("%v lines in the file %.3fs after the first: over the budget of %.0f", kept, l.Time.Sub(t0).Seconds(), maxLines)
				}
				if maxBytes >= 0 && keptBytes > maxBytes+float64(len(line)) {
					t.Fatalf("%v bytes in the file %.3fs after the first: over the budget of %.0f", keptBytes, l.Time.Sub(t0).Seconds(), maxBytes)
				}
			}
			// Cut at the budget: the burst's worth went in, not much more.
			minLines, minBytes := tc.budget(0)
			if (minLines >= 0 && kept < minLines) || (minBytes >= 0 && keptBytes < minBytes-40000) {
				t.Errorf("only %v lines (%v bytes) of the burst in the file: the budget lets in more", kept, keptBytes)
			}
			if int(kept) == burst {
				t.Fatal("the whole burst is in the file: the limit did not cut")
			}
			if reports != 1 {
				t.Fatalf("%d reports of lines left out, want 1", reports)
			}
			wantBytes := 0
			for i := 0; i < burst; i++ {
				if !inFile[i] {
					wantBytes += len(burstLine(i, longEvery))
				}
			}
			if leftLines != burst-int(kept) || leftBytes != wantBytes {
				t.Errorf("the report says %d lines (%d bytes) were left out; %d (%d bytes) are missing", leftLines, leftBytes, burst-int(kept), wantBytes)
			}
			if reportAt < lastBurstAt {
				t.Errorf("the report (line %d) comes before the last burst line kept (line %d)", reportAt, lastBurstAt)
			}
			if afterLines != after {
				t.Errorf("%d of the %d lines after the burst are in the file", afterLines, after)
			}
			if last := lines[len(lines)-1]; !strings.HasPrefix(string(last.Text), "after ") {
				t.Errorf("the file ends with %q, not with the lines after the burst", last.Text)
			}
		})
	}
}

// A bad rate limit is a bad argument: the command still runs.
func TestRateLimitBadValueStillRunsTheCommand(t *testing.T) {
	logs := t.TempDir()
	res := wrapperEnv(t, []string{"FARGATE_OTEL_RATE_LIMIT_LINES=lots"}, nil, append(identity(logs), "--", "sh", "-c", "echo hi")...)
	if res.code != 0 || string(res.stdout) != "hi\n" {
		t.Fatalf("exit %d, stdout %q", res.code, res.stdout)
	}
	if !strings.Contains(string(res.stderr), "FARGATE_OTEL_RATE_LIMIT_LINES") || !strings.Contains(string(res.stderr), "whole number of lines per second") {
		t.Errorf("stderr does not say what is wrong: %s", res.stderr)
	}
	res = wrapper(t, nil, append(identity(logs), "--rate-limit-bytes-burst", "1Mi", "--", "sh", "-c", "echo hi")...)
	if res.code != 0 || !strings.Contains(string(res.stderr), "set --rate-limit-bytes too") {
		t.Errorf("a burst without a rate: exit %d, stderr %s", res.code, res.stderr)
	}
}
