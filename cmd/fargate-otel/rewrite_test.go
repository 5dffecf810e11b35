package main

import (
	"strings"
	"testing"
)

// TestRewrittenDocumentIsReported: a document written anew rather than
// edited in place is reported on standard error, once per document, by
// index and kind/name (or as a List), with why. The case: --reinject of
// templates whose earlier injection had the follower (no command then), now
// that --command gives one: re-injecting takes the follower away. A first
// injection, an edit, warns nothing of the kind.
func TestRewrittenDocumentIsReported(t *testing.T) {
	const pod = "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: %s\n    namespace: shop\n  spec:\n    containers:\n    - name: web\n      image: r.test/web:1\n"
	input := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n---\n" +
		"apiVersion: v1\nkind: List\nitems:\n" + strings.ReplaceAll(pod, "%s", "a") + strings.ReplaceAll(pod, "%s", "b") + "---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  selector: {matchLabels: {app: api}}\n  template:\n" +
		"    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      # the app\n      - name: web\n        image: r.test/api:1\n"
	first := runCLI(t, []byte(input), "inject", "-f", "-")
	if first.code != 0 || strings.Contains(first.stderr, "written anew") {
		t.Fatalf("first injection: exit %d, or it warns of a rewrite:\n%s", first.code, first.stderr)
	}

	re := runCLI(t, []byte(first.stdout), "inject", "-f", "-", "--reinject", "--command", `web=["/app/web"]`)
	if re.code != 0 {
		t.Fatalf("--reinject: exit %d:\n%s", re.code, re.stderr)
	}
	const why = " is written anew, not edited in place: --reinject takes away part of the earlier injection, and the text is edited in place only to add or replace; its comments, quoting and layout are the YAML encoder's, so a diff of it shows more than the injection\n"
	for _, doc := range []string{"document 2 (a List)", "document 3 (deployment/api)"} {
		if n := strings.Count(re.stderr, "\nwarning: "+doc+why); n != 1 {
			t.Errorf("%d warnings for %s, want 1:\n%s", n, doc, re.stderr)
		}
	}
	if n := strings.Count(re.stderr, "written anew"); n != 2 {
		t.Errorf("%d rewrite warnings, want 2 (none for the ConfigMap):\n%s", n, re.stderr)
	}
	if !strings.HasPrefix(re.stdout, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n---\n") {
		t.Errorf("the ConfigMap was not kept byte for byte:\n%s", re.stdout)
	}

	// -q: no report, no warning.
	quiet := runCLI(t, []byte(first.stdout), "inject", "-f", "-", "-q", "--reinject", "--command", `web=["/app/web"]`)
	if quiet.code != 0 || strings.Contains(quiet.stderr, "written anew") {
		t.Errorf("-q: exit %d:\n%s", quiet.code, quiet.stderr)
	}
}
