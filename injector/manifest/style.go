package manifest

import (
	"encoding/json"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// style is how a document indents, detected from its own block
// collections, so that new lines look like the author's.
type style struct {
	// unit is the indentation of a mapping under its key (2 or 4).
	unit int
	// seqOff is the column of a sequence's "-" less its key's: 0 for the
	// compact style kubectl writes (`key:` / `- a`), 2 for `key:` / `  - a`.
	seqOff int
	// itemOff is the column of an element's content less its "-" (2: "- a").
	itemOff int
}

// detectStyle counts the author's choices; ties and documents without an
// example get kubectl's style.
func detectStyle(root *yaml.Node) style {
	units, seqs, items := map[int]int{}, map[int]int{}, map[int]int{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Line > k.Line && !isFlow(v) {
					switch v.Kind {
					case yaml.MappingNode:
						if d := v.Column - k.Column; d > 0 {
							units[d]++
						}
					case yaml.SequenceNode:
						if d := v.Column - k.Column; d >= 0 {
							seqs[d]++
						}
					}
				}
			}
		case yaml.SequenceNode:
			if !isFlow(n) {
				for _, e := range n.Content {
					if e.Kind == yaml.MappingNode && e.Line == n.Line && e.Column > n.Column {
						items[e.Column-n.Column]++
						break
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	return style{unit: vote(units, 2), seqOff: vote(seqs, 0), itemOff: vote(items, 2)}
}

func vote(counts map[int]int, def int) int {
	best, n := def, counts[def]
	for v, c := range counts {
		if c > n || (c == n && v < best && c > 0) {
			best, n = v, c
		}
	}
	return best
}

// pairs writes mapping entries (key, value, key, value...) at indentation ind.
func (st style) pairs(b *strings.Builder, content []*yaml.Node, ind int, eol string) {
	for i := 0; i+1 < len(content); i += 2 {
		k, v := content[i], content[i+1]
		b.WriteString(strings.Repeat(" ", ind))
		b.WriteString(st.scalar(k))
		b.WriteString(":")
		st.after(b, v, ind, eol)
	}
}

// after writes what follows "key:" or "- ": a scalar or an empty
// collection on the same line, else a block on the next lines.
func (st style) after(b *strings.Builder, v *yaml.Node, keyInd int, eol string) {
	switch {
	case v.Kind == yaml.MappingNode && len(v.Content) == 0:
		b.WriteString(" {}" + eol)
	case v.Kind == yaml.SequenceNode && len(v.Content) == 0:
		b.WriteString(" []" + eol)
	case v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode:
		b.WriteString(eol)
		st.value(b, v, keyInd, eol)
	default:
		b.WriteString(" " + st.scalar(v) + eol)
	}
}

// value writes a collection that is the value of a key at keyInd.
func (st style) value(b *strings.Builder, v *yaml.Node, keyInd int, eol string) {
	if v.Kind == yaml.MappingNode {
		st.pairs(b, v.Content, keyInd+st.unit, eol)
	} else {
		st.items(b, v.Content, keyInd+st.seqOff, eol)
	}
}

// items writes sequence elements with their "-" at column dash.
func (st style) items(b *strings.Builder, content []*yaml.Node, dash int, eol string) {
	lead := strings.Repeat(" ", dash) + "-" + strings.Repeat(" ", st.itemOff-1)
	for _, e := range content {
		switch {
		case e.Kind == yaml.MappingNode && len(e.Content) == 0:
			b.WriteString(strings.Repeat(" ", dash) + "- {}" + eol)
		case e.Kind == yaml.SequenceNode && len(e.Content) == 0:
			b.WriteString(strings.Repeat(" ", dash) + "- []" + eol)
		case e.Kind == yaml.MappingNode || e.Kind == yaml.SequenceNode:
			var inner strings.Builder
			if e.Kind == yaml.MappingNode {
				st.pairs(&inner, e.Content, dash+st.itemOff, eol)
			} else {
				st.items(&inner, e.Content, dash+st.itemOff, eol)
			}
			b.WriteString(lead + inner.String()[dash+st.itemOff:])
		default:
			b.WriteString(strings.Repeat(" ", dash) + "- " + st.scalar(e) + eol)
		}
	}
}

// scalar is a new scalar as block YAML writes it: as yaml.v3 quotes it
// (strings that would read as something else are quoted, YAML 1.1's
// booleans included), on one line (a multi-line string as a JSON string,
// which is valid YAML).
func (st style) scalar(n *yaml.Node) string {
	if n.Tag != "!!str" && n.Tag != "" {
		return n.Value
	}
	if strings.ContainsAny(n.Value, "\n\r") {
		return jsonString(n.Value)
	}
	out, err := yaml.Marshal(n.Value)
	if err != nil {
		return jsonString(n.Value)
	}
	s := strings.TrimSuffix(string(out), "\n")
	if strings.Contains(s, "\n") {
		return jsonString(n.Value)
	}
	return s
}

var plainFlow = regexp.MustCompile(`^[A-Za-z0-9_./=@%+-]+$`)

// flowScalar is a new scalar inside a flow collection, where , [ ] { } end
// a plain scalar: plain only when it cannot be misread.
func flowScalar(n *yaml.Node) string {
	if n.Tag != "!!str" && n.Tag != "" {
		return n.Value
	}
	if plainFlow.MatchString(n.Value) {
		if out, err := yaml.Marshal(n.Value); err == nil && strings.TrimSuffix(string(out), "\n") == n.Value && !strings.HasPrefix(n.Value, "-") {
			return n.Value
		}
	}
	return jsonString(n.Value)
}

func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
