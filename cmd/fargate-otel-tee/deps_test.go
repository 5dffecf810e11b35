package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The wrapper is copied into every pod: it must stay small, so it may use the
// standard library and the project's tee and logrotate packages only, and of
// the standard library not the TLS and HTTP stacks (they would triple its
// size). The follower, a binary of its own next to it in the image, may add
// tee/follow and the standard library's net/http.
func TestDependenciesAreStdlibOnly(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		allowed   []string
		forbidden []string
	}{{
		pkg:       ".",
		allowed:   []string{"cmd/fargate-otel-tee", "tee", "logrotate"},
		forbidden: []string{"net/http", "crypto/tls", "crypto/x509"},
	}, {
		pkg:     "./follow",
		allowed: []string{"cmd/fargate-otel-tee/follow", "tee", "tee/follow", "logrotate"},
	}} {
		allowed := map[string]bool{}
		for _, p := range tc.allowed {
			allowed["github.com/fargate-otel/fargate-otel/"+p] = true
		}
		for _, p := range goList(t, tc.pkg, "{{if not .Standard}}{{.ImportPath}}{{end}}") {
			if !allowed[p] {
				t.Errorf("%s depends on %s: only the standard library, tee, tee/follow and logrotate are allowed", tc.pkg, p)
			}
		}
		std := map[string]bool{}
		for _, p := range goList(t, tc.pkg, "{{if .Standard}}{{.ImportPath}}{{end}}") {
			std[p] = true
		}
		for _, p := range tc.forbidden {
			if std[p] {
				t.Errorf("the wrapper depends on %s: it would no longer fit its size budget (3 MB); that belongs in the follower", p)
			}
		}
	}
}

func goList(t *testing.T, pkg, format string) []string {
	t.Helper()
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", format, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}
