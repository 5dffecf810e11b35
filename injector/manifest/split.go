package manifest

import "bytes"

// document is one YAML document of a stream, with the separator line that
// preceded it (empty for the first), both kept verbatim so that documents
// the injector does not change are written back byte for byte.
type document struct {
	sep  []byte
	text []byte
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

// join is the inverse of split.
func join(docs []document) []byte {
	var out []byte
	for _, d := range docs {
		out = append(out, d.sep...)
		out = append(out, d.text...)
	}
	return out
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
