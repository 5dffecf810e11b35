package manifest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// noRewrites fails the test when a document is written anew instead of
// edited in place.
func noRewrites(t *testing.T) {
	t.Helper()
	var mu sync.Mutex
	onRewrite = func(err error, attempt []byte) {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("a document was written anew, not edited: %v\nattempt:\n%s", err, attempt)
	}
	t.Cleanup(func() { onRewrite = nil })
}

// TestRewrittenSaysWhy: a document written anew instead of edited in place
// says so and why in every Object it holds, and the others say nothing.
// The case that writes anew: --reinject of a template whose earlier
// injection had more (the follower of a container without a command,
// which has one now), so that re-injecting takes something away.
func TestRewrittenSaysWhy(t *testing.T) {
	const pod = "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: %s\n    namespace: shop\n  spec:\n    containers:\n    - name: web\n      image: r.test/web:1\n"
	input := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n---\n" +
		"apiVersion: v1\nkind: List\nitems:\n" + fmt.Sprintf(pod, "a") + fmt.Sprintf(pod, "b") + "---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  selector: {matchLabels: {app: api}}\n  template:\n" +
		"    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      # the app\n      - name: web\n        image: r.test/api:1\n"
	cfg := testConfig()
	first, objs, err := Inject([]byte(input), Options{Config: cfg})
	if err != nil || len(objs) != 3 {
		t.Fatalf("err %v, %d objects", err, len(objs))
	}
	for _, o := range objs {
		if !o.Injected || o.Rewritten != "" {
			t.Fatalf("%s: injected %v, rewritten %q: a first injection is an edit", o, o.Injected, o.Rewritten)
		}
		if len(o.Status.Followed()) == 0 {
			t.Fatalf("%s: no container followed (status %+v): the case needs the follower", o, o.Status)
		}
	}

	var rewrites []string
	onRewrite = func(err error, _ []byte) { rewrites = append(rewrites, err.Error()) }
	t.Cleanup(func() { onRewrite = nil })
	_, objs, err = Inject(first, Options{Config: cfg, Reinject: true, Commands: []Command{{Container: "web", Argv: []string{"/app/web"}}}})
	if err != nil || len(objs) != 3 {
		t.Fatalf("err %v, %d objects", err, len(objs))
	}
	if len(rewrites) != 2 {
		t.Fatalf("%d documents written anew, want 2 (the List and the Deployment): %q", len(rewrites), rewrites)
	}
	for i, want := range []string{"document 2 (a List)", "document 2 (a List)", "document 3 (deployment/api)"} {
		o := objs[i]
		if !o.Reinjected || !strings.HasPrefix(o.Rewritten, "--reinject takes away part of the earlier injection") {
			t.Errorf("%s: reinjected %v, rewritten %q", o, o.Reinjected, o.Rewritten)
		}
		if got := DocumentName(o); got != want {
			t.Errorf("DocumentName = %q, want %q", got, want)
		}
	}
}

// TestRewriteReasonOfAnEditThatDoesNotReadBack: the guard behind every
// edit. A tree changed without ops (which no caller does) edits nothing,
// so the text does not read back as the tree: written anew, and why.
func TestRewriteReasonOfAnEditThatDoesNotReadBack(t *testing.T) {
	d := &document{text: []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p # the pod\nspec: {}\n")}
	if err := d.parse(); err != nil {
		t.Fatal(err)
	}
	mapValue(mapValue(d.node.Content[0], "metadata"), "name").Value = "q"
	out, err := d.edited()
	if err != nil {
		t.Fatal(err)
	}
	if d.rewritten != readBackMismatch || !strings.Contains(string(out), "name: q") {
		t.Fatalf("rewritten %q, output:\n%s", d.rewritten, out)
	}
	if got := rewriteReason(nil, fmt.Errorf("%w: overlapping edits", errNoSplice)); got != "the text could not be edited in place (overlapping edits)" {
		t.Fatalf("reason of a splice error: %q", got)
	}
}
