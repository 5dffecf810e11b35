package manifest

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// text is a document's text with its line starts.
type text struct {
	src   []byte
	lines []int // byte offset of each line's start
	eol   string
}

func newText(src []byte) *text {
	t := &text{src: src, lines: []int{0}, eol: "\n"}
	for i, b := range src {
		if b == '\n' && i+1 < len(src) {
			t.lines = append(t.lines, i+1)
		}
	}
	if bytes.Contains(src, []byte("\r\n")) {
		t.eol = "\r\n"
	}
	return t
}

// line is line i (0-based) without its end of line.
func (t *text) line(i int) string {
	start := t.lines[i]
	end := len(t.src)
	if i+1 < len(t.lines) {
		end = t.lines[i+1]
	}
	return strings.TrimRight(string(t.src[start:end]), "\r\n")
}

// lineEnd is the offset of line i's end of line (or of the text's end).
func (t *text) lineEnd(i int) int {
	return t.lines[i] + len(t.line(i))
}

// nextLine is the offset where line i+1 starts (the text's end after the last).
func (t *text) nextLine(i int) int {
	if i+1 < len(t.lines) {
		return t.lines[i+1]
	}
	return len(t.src)
}

// offset of a node's position (yaml.v3 counts columns in characters).
func (t *text) offset(n *yaml.Node) (int, error) {
	if n.Line < 1 || n.Line > len(t.lines) {
		return 0, errNoSplice
	}
	l := t.line(n.Line - 1)
	off := 0
	for c := 1; c < n.Column; c++ {
		if off >= len(l) {
			if c == n.Column-1 || off == len(l) {
				break
			}
			return 0, errNoSplice
		}
		_, size := utf8.DecodeRuneInString(l[off:])
		off += size
	}
	return t.lines[n.Line-1] + off, nil
}

func indentOf(l string) int {
	return len(l) - len(strings.TrimLeft(l, " "))
}

// neutral says whether a line holds no content: blank or a comment.
func neutral(l string) bool {
	s := strings.TrimSpace(l)
	return s == "" || s[0] == '#'
}

func isComment(l string) bool {
	s := strings.TrimSpace(l)
	return s != "" && s[0] == '#'
}

func startsEntry(l string, col int) bool {
	if len(l) <= col || l[col] != '-' {
		return false
	}
	return len(l) == col+1 || l[col+1] == ' ' || l[col+1] == '\t'
}

// lastLine is the last line (0-based) of a block collection: its content,
// then the comments after it that are indented as its own lines (a
// commented-out field belongs to it; a comment at the indentation of the
// next key belongs to that key). parent is the indentation of the key it is
// the value of (-1 if none).
func (t *text) lastLine(n *yaml.Node, parent int) int {
	ind := n.Column - 1
	start := n.Line - 1
	last := start
	end := len(t.lines)
	for i := start + 1; i < len(t.lines); i++ {
		l := t.line(i)
		if neutral(l) {
			continue
		}
		in := indentOf(l)
		if in < ind || (n.Kind == yaml.SequenceNode && in == ind && !startsEntry(l, ind)) {
			end = i
			break
		}
		last = i
	}
	for i := last + 1; i < end; i++ {
		l := t.line(i)
		if !isComment(l) {
			continue
		}
		in := indentOf(l)
		belongs := in > ind || (in == ind && (n.Kind == yaml.MappingNode || ind > parent))
		if !belongs {
			break
		}
		last = i
	}
	return last
}

// scalarEnd is the offset after a one-line scalar or alias that starts at off.
func (t *text) scalarEnd(n *yaml.Node, off int) (int, error) {
	src := t.src
	lineEnd := off
	for lineEnd < len(src) && src[lineEnd] != '\n' && src[lineEnd] != '\r' {
		lineEnd++
	}
	switch {
	case n.Kind == yaml.AliasNode:
		if end := off + 1 + len(n.Value); end <= lineEnd && string(src[off:end]) == "*"+n.Value {
			return end, nil
		}
	case n.Style&yaml.DoubleQuotedStyle != 0:
		for i := off + 1; i < lineEnd; i++ {
			switch src[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		for i := off + 1; i < lineEnd; i++ {
			if src[i] == '\'' {
				if i+1 < lineEnd && src[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
	case n.Tag == "!!null" && n.Value == "":
		return off, nil
	default:
		if end := off + len(n.Value); end <= lineEnd && string(src[off:end]) == n.Value {
			return end, nil
		}
	}
	return 0, errNoSplice
}

// flowEnd is the offset after the flow collection that starts at off.
func (t *text) flowEnd(off int) (int, error) {
	src := t.src
	depth := 0
	for i := off; i < len(src); i++ {
		switch c := src[i]; c {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case '"':
			for i++; i < len(src) && src[i] != '"'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(src); i++ {
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
		case '#':
			if i > 0 && (src[i-1] == ' ' || src[i-1] == '\t') {
				for i < len(src) && src[i] != '\n' {
					i++
				}
			}
		}
	}
	return 0, errNoSplice
}
