package scenario

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The demo app's numbered lines ("demo-app stdout line 12", "... (last)"),
// and an account of where each number of each stream arrived when a pod's
// telemetry went to several sinks one after the other (a live switch of
// its exporters): every number exactly once across them, each sink holding
// one run of numbers after the previous sink's.

var numberedLine = regexp.MustCompile(`^\S+ (stdout|stderr) line (\d+)( \(last\))?$`)

// ParseNumbered reads a demo app line: its stream and number.
func ParseNumbered(body string) (stream string, n int, ok bool) {
	m := numberedLine.FindStringSubmatch(body)
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return "", 0, false
	}
	return m[1], n, true
}

// SinkLines are the bodies of one pod's container at one sink, named.
type SinkLines struct {
	Sink   string
	Bodies []string
}

// Run is what one sink holds of one stream.
type Run struct {
	Sink        string
	Count       int
	First, Last int // 0 when Count is 0
}

// StreamAccount is one stream across the sinks, in the order they were
// used.
type StreamAccount struct {
	Stream string
	Runs   []Run
	// Max is the highest number seen anywhere.
	Max int
	// Missing are numbers up to the account's bound that no sink holds.
	Missing []int
	// Repeated are numbers that arrived more than once (at one sink or
	// across sinks).
	Repeated []int
	// Interleaved are numbers that a sink holds although a later sink
	// already holds a lower one: the switch was not one clean cut.
	Interleaved []int
}

// LineAccount is one pod's numbered lines across sinks.
type LineAccount struct {
	// UpTo bounds Missing: numbers above it may still be on their way.
	UpTo    int
	Streams []StreamAccount
}

// AccountLines accounts for the numbered lines of both streams across
// sinks (given in the order the pod used them), checking numbers 1..upTo
// for gaps.
func AccountLines(upTo int, sinks []SinkLines) LineAccount {
	acc := LineAccount{UpTo: upTo}
	for _, stream := range []string{"stdout", "stderr"} {
		sa := StreamAccount{Stream: stream}
		count := map[int]int{}
		var perSink [][]int
		for _, s := range sinks {
			var nums []int
			for _, b := range s.Bodies {
				if st, n, ok := ParseNumbered(b); ok && st == stream {
					nums = append(nums, n)
					count[n]++
					sa.Max = max(sa.Max, n)
				}
			}
			slices.Sort(nums)
			r := Run{Sink: s.Sink, Count: len(nums)}
			if len(nums) > 0 {
				r.First, r.Last = nums[0], nums[len(nums)-1]
			}
			sa.Runs = append(sa.Runs, r)
			perSink = append(perSink, nums)
		}
		for n := 1; n <= upTo; n++ {
			if count[n] == 0 {
				sa.Missing = append(sa.Missing, n)
			}
		}
		for n, c := range count {
			if c > 1 {
				sa.Repeated = append(sa.Repeated, n)
			}
		}
		sort.Ints(sa.Repeated)
		// A number at sink i above the lowest number of any later sink.
		seen := map[int]bool{}
		for i, nums := range perSink {
			lowestLater := 0
			for _, later := range perSink[i+1:] {
				if len(later) > 0 && (lowestLater == 0 || later[0] < lowestLater) {
					lowestLater = later[0]
				}
			}
			for _, n := range nums {
				if lowestLater != 0 && n > lowestLater && !seen[n] {
					seen[n] = true
					sa.Interleaved = append(sa.Interleaved, n)
				}
			}
		}
		sort.Ints(sa.Interleaved)
		acc.Streams = append(acc.Streams, sa)
	}
	return acc
}

// Max is the highest number of either stream.
func (a LineAccount) Max() int {
	m := 0
	for _, s := range a.Streams {
		m = max(m, s.Max)
	}
	return m
}

// MinMax is the lower of the two streams' highest numbers: every line up
// to it was written on both streams.
func (a LineAccount) MinMax() int {
	m := -1
	for _, s := range a.Streams {
		if m < 0 || s.Max < m {
			m = s.Max
		}
	}
	return max(m, 0)
}

// Run is what sink holds of stream.
func (a LineAccount) Run(stream, sink string) Run {
	for _, s := range a.Streams {
		if s.Stream != stream {
			continue
		}
		for _, r := range s.Runs {
			if r.Sink == sink {
				return r
			}
		}
	}
	return Run{Sink: sink}
}

// Gaps is an error naming the numbers up to UpTo that are missing.
func (a LineAccount) Gaps() error {
	var errs []error
	for _, s := range a.Streams {
		if len(s.Missing) > 0 {
			errs = append(errs, fmt.Errorf("%s: %d of lines 1..%d missing, e.g. %v", s.Stream, len(s.Missing), a.UpTo, head(s.Missing)))
		}
	}
	return errors.Join(errs...)
}

// Faults is an error naming the repeated and interleaved numbers, which
// no later arrival can fix.
func (a LineAccount) Faults() error {
	var errs []error
	for _, s := range a.Streams {
		if len(s.Repeated) > 0 {
			errs = append(errs, fmt.Errorf("%s: %d lines arrived more than once, e.g. %v", s.Stream, len(s.Repeated), head(s.Repeated)))
		}
		if len(s.Interleaved) > 0 {
			errs = append(errs, fmt.Errorf("%s: %d lines arrived at a sink after the next sink had received an earlier line, e.g. %v", s.Stream, len(s.Interleaved), head(s.Interleaved)))
		}
	}
	return errors.Join(errs...)
}

// String shows where the lines went: "stdout: a 1..57 (57), b 58..120
// (63); stderr: ...".
func (a LineAccount) String() string {
	var parts []string
	for _, s := range a.Streams {
		var runs []string
		for _, r := range s.Runs {
			if r.Count == 0 {
				runs = append(runs, r.Sink+" none")
				continue
			}
			runs = append(runs, fmt.Sprintf("%s %d..%d (%d)", r.Sink, r.First, r.Last, r.Count))
		}
		parts = append(parts, s.Stream+": "+strings.Join(runs, ", "))
	}
	return strings.Join(parts, "; ")
}

func head(n []int) []int { return n[:min(len(n), 5)] }
