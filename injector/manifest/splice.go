package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

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
