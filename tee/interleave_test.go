package tee

import (
	"fmt"
	"strings"
	"testing"
)

func TestInterleaveRestoresSteadyAlternation(t *testing.T) {
	for _, tc := range []struct {
		a, b string // a became ready first
		want string
	}{
		{"10\n12\n14\n", "11\n13\n15\n", "10 11 12 13 14 15"},
		{"10\n12\n", "11\n", "10 11 12"},
		{"10\n12\n14\n", "11\n13\n", "10 11 12 13 14"},
		{"11\n", "12\n14\n", "11 12 14"},
		{"1\n2\n3\n4\n", "", "1 2 3 4"},
		{"10\n12\nunfinished", "11\n", "10 11 12"}, // the unfinished line waits
	} {
		out, errs := newLineSplitter(Stdout, CRI), newLineSplitter(Stderr, CRI)
		var got recordList
		interleave(nil, chunk{&source{split: out}, []byte(tc.a)}, chunk{&source{split: errs}, []byte(tc.b)}, &got)
		var texts []string
		for _, r := range got.recs {
			texts = append(texts, r.text)
		}
		if strings.Join(texts, " ") != tc.want {
			t.Errorf("interleave(%q, %q) = %v, want %s", tc.a, tc.b, texts, tc.want)
		}
	}
}

func TestInterleaveKeepsEachStreamInOrder(t *testing.T) {
	for na := 0; na < 7; na++ {
		for nb := 0; nb < 7; nb++ {
			var a, b strings.Builder
			for i := 0; i < na; i++ {
				fmt.Fprintf(&a, "a%d\n", i)
			}
			for i := 0; i < nb; i++ {
				fmt.Fprintf(&b, "b%d\n", i)
			}
			out, errs := newLineSplitter(Stdout, CRI), newLineSplitter(Stderr, CRI)
			var got recordList
			interleave(nil, chunk{&source{split: out}, []byte(a.String())}, chunk{&source{split: errs}, []byte(b.String())}, &got)
			next := map[Stream]int{}
			for _, r := range got.recs {
				want := fmt.Sprintf("%c%d", "ab"[r.stream], next[r.stream])
				if r.text != want {
					t.Fatalf("na=%d nb=%d: got %q, want %q", na, nb, r.text, want)
				}
				next[r.stream]++
			}
			if next[Stdout] != na || next[Stderr] != nb {
				t.Fatalf("na=%d nb=%d: lines lost: %v", na, nb, next)
			}
		}
	}
}
