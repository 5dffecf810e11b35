package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// JSON documents (`kubectl get -o json`, jq's output) are read into the same
// node tree as YAML, keeping each scalar's text, and written back as JSON
// in the input's indentation and key order: JSON in, JSON out.

// jsonDoc is a parsed JSON value.
type jsonDoc struct {
	// raw is the text of each scalar of the input.
	raw map[*yaml.Node]string
	// indent is one level of the input's indentation ("" when compact).
	indent string
	// escapeHTML: the input writes <, > and & as \u003c... (Go's encoder does).
	escapeHTML bool
}

// splitJSON cuts a stream of JSON values into documents: the white space
// before each value is its separator.
func splitJSON(input []byte) ([]document, error) {
	dec := json.NewDecoder(bytes.NewReader(input))
	var docs []document
	prev := 0
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("JSON value %d does not read: %w", len(docs)+1, err)
		}
		end := int(dec.InputOffset())
		start := end - len(v)
		docs = append(docs, document{sep: input[prev:start], text: input[start:end], json: true})
		prev = end
	}
	if prev < len(input) {
		docs = append(docs, document{sep: input[prev:], json: true})
	}
	return docs, nil
}

// parseJSON builds the node tree of one JSON value.
func parseJSON(data []byte) (*yaml.Node, *jsonDoc, error) {
	jd := &jsonDoc{raw: map[*yaml.Node]string{}, indent: detectJSONIndent(data)}
	jd.escapeHTML = bytes.Contains(data, []byte(`\u003c`)) || bytes.Contains(data, []byte(`\u003e`)) || bytes.Contains(data, []byte(`\u0026`))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var read func() (*yaml.Node, error)
	tokenText := func(end int) string {
		// The token ends at end; it starts after white space, ',' and ':'.
		i := end - 1
		if data[i] == '"' {
			for i--; i > 0; i-- {
				if data[i] == '"' && !escaped(data, i) {
					break
				}
			}
			return string(data[i:end])
		}
		for i > 0 && !strings.ContainsRune(" \t\r\n,:[{", rune(data[i-1])) {
			i--
		}
		return string(data[i:end])
	}
	read = func() (*yaml.Node, error) {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return nil, err
					}
					key, ok := k.(string)
					if !ok {
						return nil, fmt.Errorf("object key %v is not a string", k)
					}
					kn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Style: yaml.DoubleQuotedStyle}
					jd.raw[kn] = tokenText(int(dec.InputOffset()))
					v, err := read()
					if err != nil {
						return nil, err
					}
					n.Content = append(n.Content, kn, v)
				}
				_, err := dec.Token()
				return n, err
			case '[':
				n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
				for dec.More() {
					v, err := read()
					if err != nil {
						return nil, err
					}
					n.Content = append(n.Content, v)
				}
				_, err := dec.Token()
				return n, err
			}
			return nil, fmt.Errorf("unexpected %v", t)
		case string:
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t, Style: yaml.DoubleQuotedStyle}
			jd.raw[n] = tokenText(int(dec.InputOffset()))
			return n, nil
		case json.Number:
			tag := "!!int"
			if strings.ContainsAny(t.String(), ".eE") {
				tag = "!!float"
			}
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}
			jd.raw[n] = t.String()
			return n, nil
		case bool:
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(t)}
			jd.raw[n] = n.Value
			return n, nil
		case nil:
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
			jd.raw[n] = "null"
			return n, nil
		}
		return nil, fmt.Errorf("unexpected token %v", tok)
	}
	root, err := read()
	if err != nil {
		return nil, nil, err
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}, jd, nil
}

func escaped(data []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// detectJSONIndent is the indentation of the first indented line: what
// `kubectl -o json` (4 spaces) or jq (2) wrote; "" for compact JSON.
func detectJSONIndent(data []byte) string {
	for _, line := range bytes.Split(data, []byte("\n"))[1:] {
		trimmed := bytes.TrimLeft(line, " \t")
		if len(trimmed) < len(line) && len(trimmed) > 0 {
			return string(line[:len(line)-len(trimmed)])
		}
	}
	return ""
}

// writeJSON writes a node tree as JSON, as Go's json.MarshalIndent does,
// with the input's scalars as they were written.
func (jd *jsonDoc) write(b *bytes.Buffer, n *yaml.Node, depth int) error {
	nl := func(d int) {
		if jd.indent != "" {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(jd.indent, d))
		}
	}
	colon := ": "
	if jd.indent == "" {
		colon = ":"
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return jd.write(b, n.Content[0], depth)
	case yaml.AliasNode:
		return jd.write(b, n.Alias, depth)
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			nl(depth + 1)
			if r, ok := jd.raw[n.Content[i]]; ok {
				b.WriteString(r)
			} else {
				b.WriteString(jd.str(n.Content[i].Value))
			}
			b.WriteString(colon)
			if err := jd.write(b, n.Content[i+1], depth+1); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte('}')
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			nl(depth + 1)
			if err := jd.write(b, c, depth+1); err != nil {
				return err
			}
		}
		nl(depth)
		b.WriteByte(']')
	case yaml.ScalarNode:
		if r, ok := jd.raw[n]; ok {
			b.WriteString(r)
			return nil
		}
		s, err := jd.scalar(n)
		if err != nil {
			return err
		}
		b.WriteString(s)
	}
	return nil
}

// scalar is a scalar's JSON: strings as strings; a plain YAML scalar as
// Kubernetes reads it (YAML 1.1: yes is true, 0x1f is 31).
func (jd *jsonDoc) scalar(n *yaml.Node) (string, error) {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return jd.str(n.Value), nil
	}
	switch n.Tag {
	case "!!null":
		return "null", nil
	case "!!bool":
		return strings.ToLower(n.Value), nil
	case "!!int", "!!float":
		if json.Valid([]byte(n.Value)) {
			return n.Value, nil
		}
	case "!!str":
		if !yaml11Scalar(n.Value) {
			return jd.str(n.Value), nil
		}
	default:
		return jd.str(n.Value), nil
	}
	j, err := sigsyaml.YAMLToJSON([]byte(n.Value))
	if err != nil {
		return "", fmt.Errorf("scalar %q: %w", n.Value, err)
	}
	return string(bytes.TrimSpace(j)), nil
}

// yaml11Scalar: words YAML 1.1 (and so Kubernetes) reads as booleans.
func yaml11Scalar(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "no", "on", "off", "y", "n":
		return true
	}
	return false
}

func (jd *jsonDoc) str(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(jd.escapeHTML)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// hasAliases says whether a tree uses anchors, aliases or merge keys, which
// the ordered JSON writer does not expand.
func hasAliases(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" || (n.Kind == yaml.ScalarNode && n.Tag == "!!merge") {
		return true
	}
	for _, c := range n.Content {
		if hasAliases(c) {
			return true
		}
	}
	return false
}

// toJSON writes a YAML document as JSON (for -o json), in its key order;
// with aliases, as Kubernetes reads it (keys sorted).
func toJSON(root *yaml.Node, indent string) ([]byte, error) {
	jd := &jsonDoc{raw: map[*yaml.Node]string{}, indent: indent}
	var b bytes.Buffer
	if hasAliases(root) {
		text, err := yaml.Marshal(root)
		if err != nil {
			return nil, err
		}
		j, err := sigsyaml.YAMLToJSON(text)
		if err != nil {
			return nil, err
		}
		if err := json.Indent(&b, j, "", indent); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	if err := jd.write(&b, root, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// toYAML writes a tree (from JSON) as block YAML, kubectl's style.
func toYAML(root *yaml.Node) ([]byte, error) {
	var clear func(n *yaml.Node)
	clear = func(n *yaml.Node) {
		n.Style = 0
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
			n.Style = yaml.LiteralStyle
		}
		for _, c := range n.Content {
			clear(c)
		}
	}
	clear(root)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	_ = enc.Close()
	return b.Bytes(), nil
}
