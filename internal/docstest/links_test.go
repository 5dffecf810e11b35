package docstest

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository root is not two folders up: %v", err)
	}
	return root
}

// docPages are the Markdown files whose links must resolve.
func docPages(t *testing.T, root string) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	if len(pages) < 5 {
		t.Fatalf("only %d documentation pages found", len(pages))
	}
	return pages
}

// TestRelativeLinksResolve fails for a link of README.md or docs/*.md to
// a file or folder of the repository that does not exist, or to a heading
// anchor that the target page does not have (as GitHub makes anchors).
// Links with a scheme (https:, mailto:) are not fetched.
func TestRelativeLinksResolve(t *testing.T) {
	root := repoRoot(t)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		anchors[path] = Anchors(string(b))
		return anchors[path]
	}
	checked := 0
	for _, page := range docPages(t, root) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, page)
		for _, l := range Links(string(b)) {
			u, err := url.Parse(l.Target)
			if err != nil {
				t.Errorf("%s:%d: link %q does not parse: %v", rel, l.Line, l.Target, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				continue
			}
			checked++
			target := page
			if u.Path != "" {
				if strings.HasPrefix(u.Path, "/") {
					t.Errorf("%s:%d: link %q is absolute: GitHub resolves it against the site, not the repository; write it relative to %s",
						rel, l.Line, l.Target, filepath.Dir(rel))
					continue
				}
				target = filepath.Join(filepath.Dir(page), filepath.FromSlash(u.Path))
				if r, err := filepath.Rel(root, target); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s:%d: link %q leaves the repository", rel, l.Line, l.Target)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist (links are relative to the page's folder, %s/)",
						rel, l.Line, l.Target, mustRel(root, target), filepath.Dir(rel))
					continue
				}
			}
			if u.Fragment == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				continue // GitHub's line anchors (#L10) and the like
			}
			if !anchorsOf(target)[u.Fragment] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", rel, l.Line, l.Target, mustRel(root, target), u.Fragment)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links checked: is the link parser still finding them?", checked)
	}
}

// TestTablesAreWellFormed fails for a table row of README.md or docs/*.md
// with more or fewer cells than its header: usually a | inside a code span,
// which GFM takes for a cell border.
func TestTablesAreWellFormed(t *testing.T) {
	root := repoRoot(t)
	for _, page := range docPages(t, root) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range TableRowProblems(string(b)) {
			t.Errorf("%s:%d: the row has another number of cells than its table's header (escape a | in a cell as \\|)", mustRel(root, page), line)
		}
	}
}

func mustRel(root, path string) string {
	r, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}
