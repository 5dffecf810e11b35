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
// its author's key order. merge writes the difference between the typed
// object before and after injection into the YAML node tree, touching only
// what changed: keys that are new are appended, elements inserted into
// sequences go where the injection put them, everything else keeps its node
// (and so its comments, order and style).

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

// merge updates raw, which holds orig (typed, so normalised), so that it
// holds mut. Keys of orig that mut lacks are left alone: the injector never
// removes anything.
func merge(raw *yaml.Node, orig, mut any) {
	if reflect.DeepEqual(orig, mut) {
		return
	}
	if raw.Kind == yaml.AliasNode && raw.Alias != nil {
		// Changing an anchor's target would change every alias of it.
		replace(raw, mut)
		return
	}
	switch m := mut.(type) {
	case map[string]any:
		o, _ := orig.(map[string]any)
		if raw.Kind != yaml.MappingNode {
			replace(raw, mut)
			return
		}
		for _, k := range sortedKeys(m) {
			mv := m[k]
			ov, had := o[k]
			if had && reflect.DeepEqual(ov, mv) {
				continue
			}
			if vn := mapValue(raw, k); vn != nil {
				merge(vn, ov, mv)
			} else if mv != nil {
				raw.Content = append(raw.Content, scalar(k), toNode(mv))
			}
		}
	case []any:
		o, _ := orig.([]any)
		if raw.Kind != yaml.SequenceNode || len(raw.Content) != len(o) {
			replace(raw, mut)
			return
		}
		content := make([]*yaml.Node, 0, len(m))
		j := 0
		for _, mv := range m {
			if j < len(o) && same(o[j], mv) {
				merge(raw.Content[j], o[j], mv)
				content = append(content, raw.Content[j])
				j++
				continue
			}
			content = append(content, toNode(mv))
		}
		if j < len(o) { // not an insertion-only change: rewrite the sequence
			replace(raw, mut)
			return
		}
		raw.Content = content
	default:
		replace(raw, mut)
	}
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

func replace(raw *yaml.Node, v any) {
	n := toNode(v)
	n.HeadComment, n.LineComment, n.FootComment = raw.HeadComment, raw.LineComment, raw.FootComment
	*raw = *n
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
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
