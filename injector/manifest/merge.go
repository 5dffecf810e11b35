package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The injector works on typed objects; a manifest is text with comments and
// its author's key order and style. merge writes the difference between the
// typed object before and after injection into the YAML node tree, touching
// only what changed: keys that are new are appended, elements inserted into
// sequences go where the injection put them, everything else keeps its node.
// It also records each change as an op, from which splice edits the text
// itself (so that the output differs from the input only by the injection).

// generic turns a typed object into JSON values, numbers kept exact.
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

type opKind int

const (
	// opAppend: new key/value pairs at the end of a mapping.
	opAppend opKind = iota
	// opInsert: new elements in a sequence, before original elements.
	opInsert
	// opReplace: a node replaced by another.
	opReplace
	// opDelete: something removed (only when re-injecting); the text is
	// then written anew rather than edited.
	opDelete
)

// op is one change of the node tree, with the original positions.
type op struct {
	kind opKind
	// node is the changed node; for opReplace a copy of the original
	// (the tree now holds the new node in its place).
	node *yaml.Node
	// key is the mapping key whose value node is, nil in a sequence.
	key *yaml.Node
	// pairs are the new keys and values (opAppend).
	pairs []*yaml.Node
	// inserts are the new elements by position (opInsert).
	inserts []insertion
	// value is the replacement (opReplace): the node in the tree now.
	value *yaml.Node
	depth int
}

// insertion is new elements before the original element at index before
// (the original length: at the end).
type insertion struct {
	before int
	nodes  []*yaml.Node
}

// merger applies a change to a node tree and records it.
type merger struct {
	ops []op
	// remove allows taking away what the new object lacks (re-injection,
	// where the old injection is what goes); otherwise nothing is removed.
	remove bool
}

// merge updates raw, which holds orig (typed, so normalised), so that it
// holds mut. Without m.remove, keys of orig that mut lacks are left alone:
// the injector never removes anything.
func (m *merger) merge(raw, key *yaml.Node, orig, mut any, depth int) {
	if reflect.DeepEqual(orig, mut) {
		return
	}
	if raw.Kind == yaml.AliasNode {
		// Changing an anchor's target would change every alias of it.
		m.replace(raw, key, mut, depth)
		return
	}
	switch mv := mut.(type) {
	case map[string]any:
		o, _ := orig.(map[string]any)
		if raw.Kind != yaml.MappingNode {
			m.replace(raw, key, mut, depth)
			return
		}
		var added []*yaml.Node
		for _, k := range sortedKeys(mv) {
			v := mv[k]
			ov, had := o[k]
			if had && reflect.DeepEqual(ov, v) {
				continue
			}
			if kn, vn := mapEntry(raw, k); vn != nil {
				m.merge(vn, kn, ov, v, depth+1)
			} else if v != nil {
				added = append(added, scalar(k), toNode(v))
			}
		}
		if m.remove {
			for k := range o {
				if _, keep := mv[k]; !keep {
					m.deleteKey(raw, k, depth)
				}
			}
		}
		if len(added) > 0 {
			raw.Content = append(raw.Content, added...)
			m.ops = append(m.ops, op{kind: opAppend, node: raw, key: key, pairs: added, depth: depth})
		}
	case []any:
		o, _ := orig.([]any)
		if raw.Kind != yaml.SequenceNode || len(raw.Content) != len(o) {
			m.replace(raw, key, mut, depth)
			return
		}
		if m.insertOnly(raw, key, o, mv, depth) {
			return
		}
		if len(o) == len(mv) {
			// Changed in place, element by element (a wrapper flag, an
			// env value of the collector when re-injecting).
			for i := range mv {
				m.merge(raw.Content[i], nil, o[i], mv[i], depth+1)
			}
			return
		}
		if m.remove && m.align(raw, key, o, mv, depth) {
			return
		}
		m.replace(raw, key, mut, depth)
	default:
		m.replace(raw, key, mut, depth)
	}
}

// insertOnly handles a sequence that only gained elements; it says whether
// that was the case.
func (m *merger) insertOnly(raw, key *yaml.Node, o, mv []any, depth int) bool {
	var pos []int // for each element of mv, its index in o, or -1 (new)
	j := 0
	for _, v := range mv {
		if j < len(o) && same(o[j], v) {
			pos = append(pos, j)
			j++
			continue
		}
		pos = append(pos, -1)
	}
	if j < len(o) {
		return false
	}
	content := make([]*yaml.Node, 0, len(mv))
	var ins []insertion
	for i, v := range mv {
		if pos[i] >= 0 {
			m.merge(raw.Content[pos[i]], nil, o[pos[i]], v, depth+1)
			content = append(content, raw.Content[pos[i]])
			continue
		}
		n := toNode(v)
		content = append(content, n)
		before := len(o)
		for _, p := range pos[i:] {
			if p >= 0 {
				before = p
				break
			}
		}
		if len(ins) > 0 && ins[len(ins)-1].before == before {
			ins[len(ins)-1].nodes = append(ins[len(ins)-1].nodes, n)
		} else {
			ins = append(ins, insertion{before: before, nodes: []*yaml.Node{n}})
		}
	}
	raw.Content = content
	m.ops = append(m.ops, op{kind: opInsert, node: raw, key: key, inserts: ins, depth: depth})
	return true
}

// align matches the elements of o and mv by name (a longest common
// subsequence), merges the matched ones and rebuilds the rest: for
// re-injection, where old injected elements go and new ones come.
func (m *merger) align(raw, key *yaml.Node, o, mv []any, depth int) bool {
	n1, n2 := len(o), len(mv)
	lcs := make([][]int, n1+1)
	for i := range lcs {
		lcs[i] = make([]int, n2+1)
	}
	for i := n1 - 1; i >= 0; i-- {
		for j := n2 - 1; j >= 0; j-- {
			if same(o[i], mv[j]) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	content := make([]*yaml.Node, 0, n2)
	i, j := 0, 0
	for j < n2 {
		switch {
		case i < n1 && same(o[i], mv[j]):
			m.merge(raw.Content[i], nil, o[i], mv[j], depth+1)
			content = append(content, raw.Content[i])
			i++
			j++
		case i < n1 && lcs[i+1][j] >= lcs[i][j+1]:
			i++ // o[i] goes
		default:
			content = append(content, toNode(mv[j]))
			j++
		}
	}
	raw.Content = content
	m.ops = append(m.ops, op{kind: opDelete, node: raw, depth: depth})
	return true
}

func (m *merger) deleteKey(raw *yaml.Node, k string, depth int) {
	for i := 0; i+1 < len(raw.Content); i += 2 {
		if raw.Content[i].Value == k {
			raw.Content = append(raw.Content[:i:i], raw.Content[i+2:]...)
			m.ops = append(m.ops, op{kind: opDelete, node: raw, depth: depth})
			return
		}
	}
}

// replace puts a new node for v in raw's place, keeping raw's comments.
func (m *merger) replace(raw, key *yaml.Node, v any, depth int) {
	old := *raw
	n := toNode(v)
	n.HeadComment, n.LineComment, n.FootComment = raw.HeadComment, raw.LineComment, raw.FootComment
	*raw = *n
	m.ops = append(m.ops, op{kind: opReplace, node: &old, key: key, value: raw, depth: depth})
}

// same says whether two sequence elements are the same item: objects with a
// name by their name (containers, volumes, env), anything else by value.
func same(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		an, aHas := am["name"]
		bn, bHas := bm["name"]
		if aHas && bHas {
			return reflect.DeepEqual(an, bn)
		}
	}
	return reflect.DeepEqual(a, b)
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	_, v := mapEntry(m, key)
	return v
}

func mapEntry(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// sortedKeys orders keys as they are written: "name" first, then the rest
// sorted, like kubectl prints objects.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == "name") != (keys[j] == "name") {
			return keys[i] == "name"
		}
		return keys[i] < keys[j]
	})
	return keys
}

func scalar(s string) *yaml.Node {
	n := &yaml.Node{}
	_ = n.Encode(s)
	if strings.Contains(s, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

// toNode writes a JSON value as YAML, nulls left out.
func toNode(v any) *yaml.Node {
	switch x := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range sortedKeys(x) {
			if x[k] == nil {
				continue
			}
			n.Content = append(n.Content, scalar(k), toNode(x[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range x {
			n.Content = append(n.Content, toNode(e))
		}
		return n
	case string:
		return scalar(x)
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(x.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: x.String()}
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	default:
		n := &yaml.Node{}
		if err := n.Encode(x); err != nil {
			return scalar(fmt.Sprint(x))
		}
		return n
	}
}
