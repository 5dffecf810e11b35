package manifest

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// document is one YAML document or JSON value of a stream, with the
// separator that preceded it (a "---" line, white space between JSON
// values, empty for the first), both kept verbatim so that documents the
// injector does not change are written back byte for byte.
type document struct {
	sep  []byte
	text []byte
	// json: the document is a JSON value (a JSON input, or a YAML
	// document written as JSON).
	json bool
	// file is the index of the input it came from.
	file int

	node   *yaml.Node // nil for blank documents and scalars
	jd     *jsonDoc   // for JSON documents
	merger merger
	// rewritten says why the changed YAML document was written anew rather
	// than edited in place ("" when it was not).
	rewritten string
}

// stream is a parsed set of inputs.
type stream struct {
	docs       []*document
	jsonInputs []bool
	configMaps map[string]map[string]string
}

// isJSON says whether an input is JSON: it begins with an object or array.
func isJSON(input []byte) bool {
	s := bytes.TrimLeft(input, " \t\r\n")
	return len(s) > 0 && (s[0] == '{' || s[0] == '[')
}

func parse(inputs [][]byte) (*stream, error) {
	s := &stream{configMaps: map[string]map[string]string{}}
	n := 0
	for f, input := range inputs {
		var docs []document
		asJSON := isJSON(input)
		if asJSON {
			var err error
			if docs, err = splitJSON(input); err != nil {
				// YAML flow style starts with { too: read it as YAML.
				asJSON = false
			}
		}
		if !asJSON {
			docs = split(input)
		}
		s.jsonInputs = append(s.jsonInputs, asJSON)
		for i := range docs {
			d := &docs[i]
			d.file = f
			n++
			if err := d.parse(); err != nil {
				return nil, fmt.Errorf("document %d is not valid YAML: %w", n, err)
			}
			if d.node != nil {
				if h, _, err := readHeader(d.node.Content[0]); err == nil && h.Kind == "ConfigMap" && h.APIVersion == "v1" {
					s.configMaps[h.Metadata.Namespace+"/"+h.Metadata.Name] = h.Data
				}
			}
			s.docs = append(s.docs, d)
		}
	}
	return s, nil
}

func (d *document) parse() error {
	if d.json {
		if len(bytes.TrimSpace(d.text)) == 0 {
			return nil
		}
		node, jd, err := parseJSON(d.text)
		if err != nil {
			return err
		}
		if node.Content[0].Kind == yaml.MappingNode {
			d.node, d.jd = node, jd
		}
		return nil
	}
	if blank(d.text) {
		return nil
	}
	var node yaml.Node
	if err := yaml.Unmarshal(d.text, &node); err != nil {
		return err
	}
	if len(node.Content) == 0 || node.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	d.node = &node
	return nil
}

// objects calls f for every object of the stream, items of Lists included.
func (s *stream) objects(f func(d *document, node *yaml.Node, doc, item int)) error {
	for i, d := range s.docs {
		if d.node == nil {
			continue
		}
		root := d.node.Content[0]
		if items := mapValue(root, "items"); items != nil && items.Kind == yaml.SequenceNode && strings.HasSuffix(kindOf(root), "List") {
			for k, item := range items.Content {
				if item.Kind == yaml.MappingNode {
					f(d, item, i+1, k)
				}
			}
		} else {
			f(d, root, i+1, -1)
		}
	}
	return nil
}

// write assembles the output in format.
func (s *stream) write(format Format) ([]byte, error) {
	if format == FormatSame {
		format = FormatJSON
		for _, j := range s.jsonInputs {
			if !j {
				format = FormatYAML
			}
		}
		if len(s.jsonInputs) == 0 {
			format = FormatYAML
		}
	}
	var out []byte
	prevFile := -1
	for i, d := range s.docs {
		text, err := d.output(format)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		sep := d.sep
		if format == FormatYAML && d.json {
			sep = nil
			if len(out) > 0 && text != nil {
				sep = []byte("---\n")
			}
		} else if format == FormatJSON && !d.json {
			sep = nil
			if text != nil && len(out) > 0 && out[len(out)-1] != '\n' {
				sep = []byte("\n")
			}
		} else if d.file != prevFile && prevFile >= 0 && format == FormatYAML {
			// The first document of a further YAML input.
			if len(out) > 0 && out[len(out)-1] != '\n' {
				out = append(out, '\n')
			}
			if len(sep) == 0 {
				sep = []byte("---\n")
			}
		}
		prevFile = d.file
		out = append(out, sep...)
		out = append(out, text...)
		if format == FormatJSON && !d.json && text != nil {
			out = append(out, '\n')
		}
	}
	return out, nil
}

// output is a document's text in format: the input's text when unchanged
// and in its format.
func (d *document) output(format Format) ([]byte, error) {
	changed := len(d.merger.ops) > 0
	switch {
	case d.json && format == FormatJSON:
		if !changed {
			return d.text, nil
		}
		var b bytes.Buffer
		if err := d.jd.write(&b, d.node, 0); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case d.json:
		if d.node == nil {
			return nil, nil
		}
		out, err := toYAML(d.node)
		return out, err
	case format == FormatJSON:
		if d.node == nil {
			return nil, nil
		}
		return toJSON(d.node, "    ")
	case !changed:
		return d.text, nil
	}
	return d.edited()
}

// edited is a changed YAML document: its text edited in place when the
// result reads as the merged tree, else the tree written anew.
func (d *document) edited() ([]byte, error) {
	want, err := nodeJSON(d.node)
	if err != nil {
		return nil, err
	}
	st := detectStyle(d.node) // merged nodes have no positions and do not vote
	out, err := spliceDoc(d.text, d.node, st, d.merger.ops)
	if err == nil {
		if got, err := yamlJSON(out); err == nil && sameJSON(got, want) {
			return out, nil
		}
		err = fmt.Errorf("%w: %s", errNoSplice, readBackMismatch)
	}
	d.rewritten = rewriteReason(d.merger.ops, err)
	if onRewrite != nil {
		onRewrite(err, out)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(st.unit)
	if st.seqOff == 0 {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(d.node); err != nil {
		return nil, fmt.Errorf("write YAML: %w", err)
	}
	_ = enc.Close()
	return buf.Bytes(), nil
}

// onRewrite, when set (by tests), hears of every document written anew
// rather than edited, and why.
var onRewrite func(err error, attempt []byte)

// readBackMismatch: the edits were made, but the text they give does not
// read as the merged tree (the check that guards every edit).
const readBackMismatch = "the edited text does not read back as the injected object"

// rewriteReason says, for the report, why a document is written anew: err
// is what edited met.
func rewriteReason(ops []op, err error) string {
	for _, o := range ops {
		if o.kind == opDelete {
			return "--reinject takes away part of the earlier injection, and the text is edited in place only to add or replace"
		}
	}
	why := strings.TrimPrefix(strings.TrimPrefix(err.Error(), errNoSplice.Error()), ": ")
	if why == readBackMismatch {
		return why
	}
	if why == "" {
		why = "a shape of YAML the in-place editor does not handle"
	}
	return "the text could not be edited in place (" + why + ")"
}

func yamlJSON(text []byte) ([]byte, error) {
	var node yaml.Node
	if err := yaml.Unmarshal(text, &node); err != nil {
		return nil, err
	}
	return nodeJSON(&node)
}

// split cuts a YAML stream at its "---" lines.
func split(input []byte) []document {
	var docs []document
	cur := document{}
	start := 0
	for start < len(input) {
		end := bytes.IndexByte(input[start:], '\n')
		var line []byte
		if end < 0 {
			line = input[start:]
			end = len(input)
		} else {
			end += start + 1
			line = input[start:end]
		}
		if isSeparator(line) {
			docs = append(docs, cur)
			cur = document{sep: line}
		} else {
			cur.text = append(cur.text, line...)
		}
		start = end
	}
	return append(docs, cur)
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := line[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// blank says whether a document holds only comments, white space and
// document-end markers.
func blank(text []byte) bool {
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("...")) {
			return false
		}
	}
	return true
}
