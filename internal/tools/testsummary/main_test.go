package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"a says hi\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"b broke\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestB"}`,
		`{"Action":"skip","Package":"p","Test":"TestC"}`,
		`{"Action":"fail","Package":"p"}`,
		`# q [build failed]`,
		`{"Action":"output","Package":"q","Output":"q.go:1: syntax error\n"}`,
		`{"Action":"fail","Package":"q"}`,
		`{"Action":"output","Package":"n","Output":"?   \tn\t[no test files]\n"}`,
		`{"Action":"skip","Package":"n"}`,
		`{"Action":"run","Package":"r","Test":"TestHangs"}`,
		`{"Action":"output","Package":"r","Test":"TestHangs","Output":"panic: test timed out\n"}`,
	}, "\n")
	var out strings.Builder
	s := summarize(strings.NewReader(in), &out, false)
	if s.passed != 1 || s.failed != 1 || s.skipped != 1 || s.badPackages != 2 {
		t.Errorf("summary = %+v, want 1 passed, 1 failed, 1 skipped, 2 bad packages", s)
	}
	for _, want := range []string{"b broke", "# q [build failed]", "syntax error", "test timed out"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "---- n (no test files)") || strings.Contains(out.String(), "SKIP") {
		t.Errorf("a package without test files must read as such, not SKIP:\n%s", out.String())
	}
	if strings.Contains(out.String(), "a says hi") {
		t.Errorf("output of a passing test was printed:\n%s", out.String())
	}
}
