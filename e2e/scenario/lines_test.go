package scenario

import (
	"fmt"
	"slices"
	"testing"
)

func TestParseNumbered(t *testing.T) {
	for _, tc := range []struct {
		body   string
		stream string
		n      int
		ok     bool
	}{
		{"demo-app stdout line 12", "stdout", 12, true},
		{"demo-app stderr line 20 (last)", "stderr", 20, true},
		{"otlp: sent trace 0af7 (line 10)", "", 0, false},
		{"demo-app stdout line twelve", "", 0, false},
		{"demo-app stdout line 3 and more", "", 0, false},
	} {
		stream, n, ok := ParseNumbered(tc.body)
		if stream != tc.stream || n != tc.n || ok != tc.ok {
			t.Errorf("ParseNumbered(%q) = %q, %d, %v; want %q, %d, %v", tc.body, stream, n, ok, tc.stream, tc.n, tc.ok)
		}
	}
}

// lines are the demo app's lines from..to on both streams.
func lines(from, to int, extra ...string) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, fmt.Sprintf("demo-app stdout line %d", n), fmt.Sprintf("demo-app stderr line %d", n))
	}
	return append(out, extra...)
}

func TestAccountLines(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		upTo                           int
		a, b                           []string
		missing, repeated, interleaved []int // of stdout
		gaps, faults                   bool
		show                           string
	}{
		{name: "a clean switch", upTo: 30, a: lines(1, 17), b: lines(18, 31),
			show: "stdout: a 1..17 (17), b 18..31 (14); stderr: a 1..17 (17), b 18..31 (14)"},
		{name: "the tail still on its way is not a gap", upTo: 30, a: lines(1, 17), b: lines(18, 25),
			missing: []int{26, 27, 28, 29, 30}, gaps: true},
		{name: "a line lost at the switch", upTo: 30, a: lines(1, 16), b: lines(18, 31),
			missing: []int{17}, gaps: true},
		{name: "a line sent to both", upTo: 30, a: lines(1, 17), b: lines(17, 31),
			repeated: []int{17}, faults: true},
		{name: "a line repeated at one sink", upTo: 30, a: lines(1, 17, "demo-app stdout line 3"), b: lines(18, 31),
			repeated: []int{3}, faults: true},
		{name: "the old sink got a line after the new one", upTo: 30, a: append(lines(1, 17), lines(19, 19)...), b: append(lines(18, 18), lines(20, 31)...),
			interleaved: []int{19}},
		{name: "other lines are ignored", upTo: 5, a: lines(1, 5, "otlp: sent trace 1 (line 1)", "hello"), b: nil,
			show: "stdout: a 1..5 (5), b none; stderr: a 1..5 (5), b none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc := AccountLines(tc.upTo, []SinkLines{{"a", tc.a}, {"b", tc.b}})
			out := acc.Streams[0]
			if out.Stream != "stdout" || !slices.Equal(out.Missing, tc.missing) || !slices.Equal(out.Repeated, tc.repeated) || !slices.Equal(out.Interleaved, tc.interleaved) {
				t.Errorf("stdout: missing %v, repeated %v, interleaved %v; want %v, %v, %v", out.Missing, out.Repeated, out.Interleaved, tc.missing, tc.repeated, tc.interleaved)
			}
			if (acc.Gaps() != nil) != tc.gaps {
				t.Errorf("Gaps() = %v", acc.Gaps())
			}
			if (acc.Faults() != nil) != (tc.faults || len(tc.interleaved) > 0) {
				t.Errorf("Faults() = %v", acc.Faults())
			}
			if tc.show != "" && acc.String() != tc.show {
				t.Errorf("String() = %q\nwant       %q", acc.String(), tc.show)
			}
		})
	}
}

func TestAccountLinesBounds(t *testing.T) {
	acc := AccountLines(10, []SinkLines{{"a", lines(1, 12)}, {"b", lines(13, 14)[:1]}})
	if acc.Max() != 13 || acc.MinMax() != 12 {
		t.Errorf("Max %d, MinMax %d; want 13, 12", acc.Max(), acc.MinMax())
	}
	if r := acc.Run("stdout", "b"); r.First != 13 || r.Count != 1 {
		t.Errorf("Run(stdout, b) = %+v", r)
	}
}
