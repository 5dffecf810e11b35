package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The wrapper is copied into every pod: it must stay small, so it may use the
// standard library and the project's tee and logrotate packages only.
func TestDependenciesAreStdlibOnly(t *testing.T) {
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-tee": true,
		"github.com/fargate-otel/fargate-otel/tee":                  true,
		"github.com/fargate-otel/fargate-otel/logrotate":            true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("fargate-otel-tee depends on %s: only the standard library, tee and logrotate are allowed", p)
		}
	}
}
