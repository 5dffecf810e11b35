package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// splice writes merge's ops into a YAML document's text as edits: new lines
// inserted where the new keys and elements go, in the document's own
// indentation and sequence style, and in-place replacements of the few
// nodes the injection changes (a flow-style sequence, a scalar). The rest
// of the text stays byte for byte: comments, quoting, block scalars, blank
// lines. The caller checks that the result reads as the merged tree, and
// writes the tree anew when it does not (errNoSplice).

var errNoSplice = errors.New("cannot edit the text in place")

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

// edit replaces src[off:end] with text (an insertion when end == off).
type edit struct {
	off, end int
	text     string
	// rank orders insertions at one offset: the ends of deeper collections
	// first (-depth), then lines before an element (1 << 20).
	rank int
	// whole: a replacement rendered from the merged tree, so that edits
	// inside it are already in it.
	whole bool
}

// splicer turns ops into edits.
type splicer struct {
	t     *text
	style style
	edits []edit
	// dirty are nodes changed by an op, and their ancestors.
	dirty map[*yaml.Node]bool
	// parents maps nodes to the indentation of the key they are the value of.
	keyIndent map[*yaml.Node]int
}

// spliceDoc applies ops to src, whose original tree is root (already
// merged: the tree holds the new nodes).
func spliceDoc(src []byte, root *yaml.Node, st style, ops []op) ([]byte, error) {
	s := &splicer{t: newText(src), style: st, dirty: map[*yaml.Node]bool{}, keyIndent: map[*yaml.Node]int{}}
	targets := map[*yaml.Node]bool{}
	for _, o := range ops {
		if o.kind == opDelete {
			return nil, errNoSplice
		}
		if o.kind == opReplace {
			targets[o.value] = true
		} else {
			targets[o.node] = true
		}
	}
	s.walk(root, targets)
	s.fixPositions(root)
	for _, o := range ops {
		if o.kind == opReplace {
			s.fixPositions(o.node)
		}
	}
	for _, o := range ops {
		if err := s.apply(o); err != nil {
			return nil, err
		}
	}
	return s.render()
}

// fixPositions moves the position of block collections that carry an
// anchor or a tag (yaml.v3 places them at the "&" or "!") to their first
// key or "-", where their lines begin.
func (s *splicer) fixPositions(n *yaml.Node) {
	for _, c := range n.Content {
		s.fixPositions(c)
	}
	if (n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode) || isFlow(n) || len(n.Content) == 0 ||
		(n.Anchor == "" && n.Style&yaml.TaggedStyle == 0) || n.Line == 0 {
		return
	}
	first := n.Content[0]
	if first.Line == 0 {
		return
	}
	if n.Kind == yaml.MappingNode {
		n.Line, n.Column = first.Line, first.Column
		return
	}
	l := s.t.line(first.Line - 1)
	before := []rune(l)
	if first.Column-1 > len(before) {
		return
	}
	head := strings.TrimRight(string(before[:first.Column-1]), " ")
	if strings.HasSuffix(head, "-") && strings.TrimSpace(head) == "-" {
		n.Line, n.Column = first.Line, len([]rune(head))
	}
}

// walk marks dirty nodes and records key indentations.
func (s *splicer) walk(n *yaml.Node, targets map[*yaml.Node]bool) bool {
	d := targets[n]
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			s.keyIndent[n.Content[i+1]] = n.Content[i].Column - 1
		}
	}
	for _, c := range n.Content {
		if s.walk(c, targets) {
			d = true
		}
	}
	if d {
		s.dirty[n] = true
	}
	return d
}

func (s *splicer) parentIndent(n *yaml.Node) int {
	if k, ok := s.keyIndent[n]; ok {
		return k
	}
	return -1
}

func isFlow(n *yaml.Node) bool {
	return n.Style&yaml.FlowStyle != 0
}

func (s *splicer) apply(o op) error {
	n := o.node
	if n.Line == 0 {
		return errNoSplice // a node that merge made: its parent's edit holds it
	}
	switch o.kind {
	case opAppend, opInsert:
		if isFlow(n) {
			empty := (o.kind == opAppend && len(n.Content) == len(o.pairs)) ||
				(o.kind == opInsert && len(n.Content) == countInserted(o.inserts))
			if empty && o.key != nil && s.blockContext(n) {
				return s.blockInsteadOfEmptyFlow(o)
			}
			return s.replaceFlow(n, n)
		}
		if o.kind == opAppend {
			last := s.t.lastLine(n, s.parentIndent(n))
			var b strings.Builder
			s.style.pairs(&b, o.pairs, n.Column-1, s.t.eol)
			s.insertAt(s.t.nextLine(last), b.String(), -o.depth)
			return nil
		}
		return s.insertItems(o)
	case opReplace:
		return s.replace(o)
	}
	return errNoSplice
}

func countInserted(ins []insertion) int {
	c := 0
	for _, i := range ins {
		c += len(i.nodes)
	}
	return c
}

// blockContext says whether a flow node sits in block context (its key's
// line is not inside another flow collection).
func (s *splicer) blockContext(n *yaml.Node) bool {
	_, ok := s.keyIndent[n]
	if !ok || n.Line < 1 {
		return false
	}
	l := s.t.line(n.Line - 1)
	off, err := s.t.offset(n)
	if err != nil {
		return false
	}
	before := l[:off-s.t.lines[n.Line-1]]
	return !strings.ContainsAny(before, "[{")
}

func (s *splicer) insertAt(off int, text string, rank int) {
	s.edits = append(s.edits, edit{off: off, end: off, text: text, rank: rank})
}

// insertItems puts new elements into a block sequence.
func (s *splicer) insertItems(o op) error {
	n := o.node
	ind := n.Column - 1
	for _, ins := range o.inserts {
		var b strings.Builder
		s.style.items(&b, ins.nodes, ind, s.t.eol)
		if ins.before >= countOriginal(n, o) {
			last := s.t.lastLine(n, s.parentIndent(n))
			s.insertAt(s.t.nextLine(last), b.String(), -o.depth)
			continue
		}
		line, err := s.entryLine(n, o, ins.before)
		if err != nil {
			return err
		}
		s.insertAt(s.t.lines[line], b.String(), 1<<20)
	}
	return nil
}

func countOriginal(n *yaml.Node, o op) int {
	return len(n.Content) - countInserted(o.inserts)
}

// entryLine is the line where original element i begins: its "-", and the
// comments right above it at the same indentation.
func (s *splicer) entryLine(n *yaml.Node, o op, i int) (int, error) {
	// The i-th original element among the merged content.
	inserted := map[*yaml.Node]bool{}
	for _, ins := range o.inserts {
		for _, x := range ins.nodes {
			inserted[x] = true
		}
	}
	var elem *yaml.Node
	k := 0
	for _, c := range n.Content {
		if inserted[c] {
			continue
		}
		if k == i {
			elem = c
			break
		}
		k++
	}
	if elem == nil || elem.Line == 0 {
		return 0, errNoSplice
	}
	ind := n.Column - 1
	floor := 0
	if o.key != nil {
		floor = o.key.Line // the line after the key (0-based index = Line)
	}
	line := -1
	for l := elem.Line - 1; l >= 0 && l >= floor-1; l-- {
		if startsEntry(s.t.line(l), ind) && strings.TrimSpace(s.t.line(l)[:ind]) == "" {
			line = l
			break
		}
	}
	if line < 0 {
		return 0, errNoSplice
	}
	for line-1 >= floor && isComment(s.t.line(line-1)) && indentOf(s.t.line(line-1)) == ind {
		line--
	}
	return line, nil
}

// blockInsteadOfEmptyFlow writes `key: {}` or `key: []` that gains content
// as a block under its key.
func (s *splicer) blockInsteadOfEmptyFlow(o op) error {
	n := o.node
	off, err := s.t.offset(n)
	if err != nil {
		return err
	}
	end, err := s.t.flowEnd(off)
	if err != nil {
		return err
	}
	start := off
	for start > 0 && (s.t.src[start-1] == ' ' || s.t.src[start-1] == '\t') {
		start--
	}
	s.edits = append(s.edits, edit{off: start, end: end})
	var b strings.Builder
	s.style.value(&b, n, s.parentIndent(n), s.t.eol)
	line := n.Line - 1
	for s.t.lineEnd(line) < end {
		line++
	}
	s.insertAt(s.t.nextLine(line), b.String(), -1000)
	return nil
}

// replaceFlow writes the merged flow node in place of the original's text.
func (s *splicer) replaceFlow(orig, merged *yaml.Node) error {
	off, err := s.t.offset(orig)
	if err != nil {
		return err
	}
	end, err := s.t.flowEnd(off)
	if err != nil {
		return err
	}
	flow, err := s.flow(merged)
	if err != nil {
		return err
	}
	s.edits = append(s.edits, edit{off: off, end: end, text: flow, whole: true})
	return nil
}

func (s *splicer) replace(o op) error {
	old, v := o.node, o.value
	off, err := s.t.offset(old)
	if err != nil {
		return err
	}
	switch {
	case old.Kind == yaml.ScalarNode || old.Kind == yaml.AliasNode:
		end, err := s.t.scalarEnd(old, off)
		if err != nil {
			return err
		}
		inFlow := !s.blockContextAt(old, off)
		if v.Kind == yaml.ScalarNode || inFlow {
			text, err := s.flow(v)
			if err != nil {
				return err
			}
			if v.Kind == yaml.ScalarNode && !inFlow {
				text = s.style.scalar(v)
			}
			if end == off && old.Kind == yaml.ScalarNode && !strings.HasSuffix(string(s.t.src[:off]), " ") {
				text = " " + text
			}
			s.edits = append(s.edits, edit{off: off, end: end, text: text, whole: true})
			return nil
		}
		if o.key == nil {
			return errNoSplice
		}
		// key: scalar  ->  key:\n  block
		start := off
		for start > 0 && (s.t.src[start-1] == ' ' || s.t.src[start-1] == '\t') {
			start--
		}
		s.edits = append(s.edits, edit{off: start, end: end})
		var b strings.Builder
		s.style.value(&b, v, s.parentIndent(v), s.t.eol)
		s.insertAt(s.t.nextLine(old.Line-1), b.String(), -1000)
		return nil
	case isFlow(old):
		return s.replaceFlow(old, v)
	default:
		// A block collection: its lines, from its first character.
		last := s.t.lastLine(old, s.parentIndent(v))
		var b strings.Builder
		ind := old.Column - 1
		switch v.Kind {
		case yaml.MappingNode:
			s.style.pairs(&b, v.Content, ind, s.t.eol)
		case yaml.SequenceNode:
			s.style.items(&b, v.Content, ind, s.t.eol)
		default:
			return errNoSplice
		}
		text := strings.TrimSuffix(b.String(), s.t.eol)
		if len(text) < ind {
			return errNoSplice
		}
		s.edits = append(s.edits, edit{off: off, end: s.t.lineEnd(last), text: text[ind:], whole: true})
		return nil
	}
}

// blockContextAt says whether a scalar at off is in block context.
func (s *splicer) blockContextAt(n *yaml.Node, off int) bool {
	l := s.t.line(n.Line - 1)
	before := l[:off-s.t.lines[n.Line-1]]
	return !strings.ContainsAny(before, "[{")
}

// flow renders a node in flow style, on one line: original scalars and
// unchanged collections as their text, new ones fresh.
func (s *splicer) flow(n *yaml.Node) (string, error) {
	if n.Line > 0 && !s.dirty[n] && n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
		off, err := s.t.offset(n)
		if err == nil {
			if end, err := s.t.scalarEnd(n, off); err == nil && end > off {
				return string(s.t.src[off:end]), nil
			}
		}
	}
	if n.Line > 0 && !s.dirty[n] && isFlow(n) {
		off, err := s.t.offset(n)
		if err == nil {
			if end, err := s.t.flowEnd(off); err == nil && !bytes.ContainsAny(s.t.src[off:end], "\r\n#") {
				return string(s.t.src[off:end]), nil
			}
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		parts := make([]string, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := s.flow(n.Content[i])
			if err != nil {
				return "", err
			}
			v, err := s.flow(n.Content[i+1])
			if err != nil {
				return "", err
			}
			parts = append(parts, k+": "+v)
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := s.flow(c)
			if err != nil {
				return "", err
			}
			parts = append(parts, v)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case yaml.ScalarNode:
		return flowScalar(n), nil
	}
	return "", errNoSplice
}

// render applies the edits in order of position.
func (s *splicer) render() ([]byte, error) {
	sort.SliceStable(s.edits, func(i, j int) bool {
		a, b := s.edits[i], s.edits[j]
		if a.off != b.off {
			return a.off < b.off
		}
		if (a.end == a.off) != (b.end == b.off) {
			return a.end == a.off // insertions before a replacement at the same place
		}
		return a.rank < b.rank
	})
	// Drop edits inside a whole replacement: it already holds them.
	var kept []edit
	cover := -1 // the kept edit that reaches farthest
	for _, e := range s.edits {
		if cover >= 0 {
			p := kept[cover]
			if e.off < p.end {
				if p.whole && e.end <= p.end {
					continue
				}
				return nil, fmt.Errorf("%w: overlapping edits", errNoSplice)
			}
		}
		kept = append(kept, e)
		if cover < 0 || e.end > kept[cover].end {
			cover = len(kept) - 1
		}
	}
	var out bytes.Buffer
	pos := 0
	for _, e := range kept {
		out.Write(s.t.src[pos:e.off])
		out.WriteString(e.text)
		pos = e.end
	}
	out.Write(s.t.src[pos:])
	return out.Bytes(), nil
}
