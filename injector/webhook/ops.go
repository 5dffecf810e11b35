package webhook

import (
	"bytes"
	"cmp"
	"encoding/json"
	"reflect"
	"sync"
)

// opWriter writes a JSON patch, operation by operation, into one buffer:
// values are encoded straight into it, and the buffer is reused from one
// admission to the next (the patch is copied out once, at the end).
type opWriter struct {
	buf *bytes.Buffer
	enc *json.Encoder
	n   int   // operations written
	err error // the first encoding error
	// members backs the objects split by members, reused like buf.
	members jsonObject
}

var opWriters = sync.Pool{New: func() any {
	buf := new(bytes.Buffer)
	return &opWriter{buf: buf, enc: json.NewEncoder(buf)}
}}

func newOpWriter() *opWriter {
	w := opWriters.Get().(*opWriter)
	w.buf.Reset()
	w.n, w.err, w.members = 0, nil, w.members[:0]
	return w
}

// free returns w to the pool; w must not be used after.
func (w *opWriter) free() {
	if w.buf.Cap() <= 1<<20 { // a rare giant pod's buffer is not kept
		opWriters.Put(w)
	}
}

// patch is the JSON patch written, nil when there is no operation.
func (w *opWriter) patch() []byte {
	if w.n == 0 {
		return nil
	}
	out := make([]byte, w.buf.Len()+1)
	copy(out, w.buf.Bytes())
	out[len(out)-1] = ']'
	return out
}

// split is jsonMembers into w's reused storage.
func (w *opWriter) split(data []byte) (jsonObject, bool) {
	start := len(w.members)
	all, ok := appendMembers(w.members, data)
	if !ok {
		return nil, false
	}
	w.members = all
	return all[start:len(all):len(all)], true
}

type opMark struct{ len, n int }

// mark and reset undo the operations written since the mark: a way of
// patching that turned out impossible half-way leaves nothing behind.
func (w *opWriter) mark() opMark { return opMark{w.buf.Len(), w.n} }

func (w *opWriter) reset(m opMark) {
	w.buf.Truncate(m.len)
	w.n = m.n
}

// op writes one operation whose value is v (none for a remove).
func (w *opWriter) op(op, path string, v reflect.Value) {
	w.begin(op, path)
	if v.IsValid() {
		w.buf.WriteString(`,"value":`)
		if err := w.enc.Encode(jsonValue(v)); err != nil {
			w.err = cmp.Or(w.err, err)
		} else {
			w.buf.Truncate(w.buf.Len() - 1) // Encode's newline
		}
	}
	w.buf.WriteByte('}')
}

// addElement writes the "add" of a new element of a list whose elements
// are identified by their field key.
func (w *opWriter) addElement(path string, v reflect.Value, key int) {
	if data, ok := w.elementJSON(v, key); ok {
		w.opRaw("add", path, data)
	}
}

// addList writes the "add" of a new list whole, like addElement.
func (w *opWriter) addList(path string, list reflect.Value, key int) {
	w.begin("add", path)
	w.buf.WriteString(`,"value":[`)
	for i := range list.Len() {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		data, _ := w.elementJSON(list.Index(i), key)
		w.buf.Write(data)
	}
	w.buf.WriteString("]}")
}

// elementJSON is the JSON of v, an element of a list identified by its
// field key, remembered (encache.go).
func (w *opWriter) elementJSON(v reflect.Value, key int) ([]byte, bool) {
	cacheable := v.Field(key).Kind() == reflect.String
	if cacheable {
		if data, ok := lookupEncoded(v, key); ok {
			return data, true
		}
	}
	data, err := json.Marshal(jsonValue(v))
	if err != nil {
		w.err = cmp.Or(w.err, err)
		return nil, false
	}
	if cacheable {
		rememberEncoded(v, key, data)
	}
	return data, true
}

// opRaw writes one operation whose value is already encoded.
func (w *opWriter) opRaw(op, path string, value []byte) {
	w.begin(op, path)
	w.buf.WriteString(`,"value":`)
	w.buf.Write(value)
	w.buf.WriteByte('}')
}

func (w *opWriter) begin(op, path string) {
	if w.n == 0 {
		w.buf.WriteByte('[')
	} else {
		w.buf.WriteByte(',')
	}
	w.n++
	w.buf.WriteString(`{"op":"`)
	w.buf.WriteString(op)
	w.buf.WriteString(`","path":`)
	writeJSONString(w.buf, path)
}

// writeJSONString writes s as a JSON string; paths are plain ASCII but for
// the keys of annotations and labels, which may hold anything.
func writeJSONString(buf *bytes.Buffer, s string) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s) // a string always encodes
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}
