// Package docstest keeps the documentation true to the repository: every
// relative link of README.md and docs/*.md resolves (files, folders and
// heading anchors as GitHub renders them), and every message the code emits
// for people (admission warnings, Events, doctor checks, the sidecars'
// advice, the wrapper's notices, refusal reasons) is explained in
// docs/troubleshooting.md. Its tests run in `go test ./...`, so in
// `make test`.
package docstest

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Link is one link target of a Markdown file, with its line (1-based).
type Link struct {
	Line   int
	Target string
}

var (
	fenceRE   = regexp.MustCompile("^\\s*(```|~~~)")
	inlineRE  = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refDefRE  = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$`)
	htmlRefRE = regexp.MustCompile(`(?:src|href)\s*=\s*"([^"]+)"`)
	headingRE = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	htmlIDRE  = regexp.MustCompile(`<a\s+(?:name|id)\s*=\s*"([^"]+)"`)
	mdLinkRE  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTagRE = regexp.MustCompile(`<[^>]+>`)
)

// proseLines returns the lines of a Markdown text with fenced code blocks
// blanked and inline code spans removed, so that nothing inside code is
// taken for a link or a heading. Line numbers are kept.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	out := make([]string, len(lines))
	fence := ""
	for i, l := range lines {
		if m := fenceRE.FindStringSubmatch(l); m != nil {
			switch {
			case fence == "":
				fence = m[1]
			case m[1] == fence:
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		out[i] = stripCodeSpans(l)
	}
	return out
}

// stripCodeSpans removes `code` spans (of one or more backticks) from a line.
func stripCodeSpans(l string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(l, '`')
		if i < 0 {
			b.WriteString(l)
			return b.String()
		}
		b.WriteString(l[:i])
		n := 0
		for i+n < len(l) && l[i+n] == '`' {
			n++
		}
		ticks := l[i : i+n]
		rest := l[i+n:]
		j := strings.Index(rest, ticks)
		if j < 0 {
			// An unclosed span: the backticks are text.
			b.WriteString(ticks)
			l = rest
			continue
		}
		l = rest[j+n:]
	}
}

// Links returns every link target of a Markdown text outside code:
// inline links and images, reference definitions, and HTML src/href.
func Links(text string) []Link {
	var out []Link
	for i, l := range proseLines(text) {
		for _, re := range []*regexp.Regexp{inlineRE, refDefRE, htmlRefRE} {
			for _, m := range re.FindAllStringSubmatch(l, -1) {
				out = append(out, Link{Line: i + 1, Target: m[1]})
			}
		}
	}
	return out
}

// Anchors returns the anchors GitHub makes for a Markdown text: one per
// heading outside code blocks (its slug, with -1, -2, ... for repeats) and
// explicit <a name="..."> or <a id="...">.
func Anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	lines := strings.Split(text, "\n")
	for i, l := range proseLines(text) {
		for _, m := range htmlIDRE.FindAllStringSubmatch(l, -1) {
			out[m[1]] = true
		}
		if l == "" {
			continue // blank, or inside a fence
		}
		// The heading's code spans keep their text: slug the raw line.
		m := headingRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		s := Slug(m[2])
		if n, dup := seen[s]; dup {
			seen[s] = n + 1
			s += "-" + strconv.Itoa(n+1)
		} else {
			seen[s] = 0
		}
		out[s] = true
	}
	return out
}

// Slug is GitHub's anchor for a heading's text: inline markup dropped
// (code spans keep their text, links their text), lower case, every
// character but letters, digits, spaces, '-' and '_' removed, spaces as '-'.
func Slug(heading string) string {
	h := mdLinkRE.ReplaceAllString(heading, "$1")
	h = htmlTagRE.ReplaceAllString(h, "")
	h = strings.ReplaceAll(h, "`", "")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TableRowProblems returns the lines (1-based) of table rows outside code
// blocks whose number of cells differs from their table's header row. GFM
// splits cells at every unescaped |, in code spans too, so a `a|b` in a
// cell breaks the table: write `a\|b`.
func TableRowProblems(text string) []int {
	var out []int
	lines := strings.Split(text, "\n")
	fence, cells := "", -1
	for i, l := range lines {
		if m := fenceRE.FindStringSubmatch(l); m != nil {
			switch {
			case fence == "":
				fence = m[1]
			case m[1] == fence:
				fence = ""
			}
			cells = -1
			continue
		}
		t := strings.TrimSpace(l)
		if fence != "" || !strings.HasPrefix(t, "|") {
			cells = -1
			continue
		}
		n := strings.Count(strings.ReplaceAll(t, `\|`, ""), "|")
		if cells < 0 {
			cells = n
		} else if n != cells {
			out = append(out, i+1)
		}
	}
	return out
}

// Normalize collapses every run of white space to one space, so that text
// wrapped across lines in Markdown matches text on one line in code.
func Normalize(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
