package webhook

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// The patch is made against the API server's bytes without decoding them
// into generic trees (the cost this avoids is most of a naive diff): these
// functions find where a member or an element starts and ends.

// jsonObject is an object's members in order: a slice rather than a map,
// as a pod's objects have a few dozen members at most and are split on
// every admission.
type jsonObject []jsonMember

type jsonMember struct{ key, value []byte }

// get returns the value of the member named key.
func (o jsonObject) get(key string) ([]byte, bool) {
	for _, m := range o {
		if string(m.key) == key {
			return m.value, true
		}
	}
	return nil, false
}

// jsonMembers splits a JSON object into its members' values, in one pass
// and without decoding them. data is valid JSON (the pod decoded from it).
// ok is false for anything but an object, and for what this splitter leaves
// to a real decoder: keys with escapes or non-ASCII bytes, duplicate keys.
func jsonMembers(data []byte) (jsonObject, bool) {
	return appendMembers(nil, data)
}

// appendMembers is jsonMembers appending to dst, whose backing array the
// patch reuses from one admission to the next; the members are
// dst[len(dst):] of the result.
func appendMembers(dst jsonObject, data []byte) (jsonObject, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	first := len(dst)
	members := dst
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case '}':
			return members, true
		case ',':
			i++
			continue
		case '"':
		default:
			return nil, false
		}
		end := bytes.IndexByte(data[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		key := data[i+1 : i+1+end]
		for _, c := range key {
			if c == '\\' || c >= 0x80 { // escapes, and bytes a decoder may rewrite
				return nil, false
			}
		}
		i = skipSpace(data, i+end+2)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		start := skipSpace(data, i+1)
		stop := skipValue(data, start)
		if stop < 0 {
			return nil, false
		}
		if _, dup := members[first:].get(string(key)); dup {
			return nil, false
		}
		members = append(members, jsonMember{key, data[start:stop]})
		i = stop
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at i, -1 if it has none.
func skipValue(data []byte, i int) int {
	depth := 0
	for ; i < len(data); i++ {
		switch c := data[i]; c {
		case '"':
			if i = stringEnd(data, i); i < 0 {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object ends a literal
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}

// stringEnd returns the index of the quote that closes the string opened
// at i, -1 if none. Most of a pod's bytes are in strings: they are skipped
// with IndexByte, not byte by byte.
func stringEnd(data []byte, i int) int {
	for i++; ; {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return -1
		}
		i += q
		// Escaped when preceded by an odd number of backslashes.
		n := 0
		for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
		i++
	}
}

// sameJSON: equal bytes (what an API server of our version sends), else
// equal values (another key order or spacing).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	var av, bv any
	if json.Unmarshal(a, &av) != nil || json.Unmarshal(b, &bv) != nil {
		return false
	}
	return reflect.DeepEqual(av, bv)
}

// jsonElements splits a JSON array into its elements' values, like
// jsonMembers. ok is false for anything but an array.
func jsonElements(data []byte) ([][]byte, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	elems := [][]byte{}
	if i < len(data) && data[i] == ']' {
		return elems, true
	}
	for {
		stop := skipValue(data, i)
		if stop <= i {
			return nil, false
		}
		elems = append(elems, data[i:stop])
		i = skipSpace(data, stop)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ']':
			return elems, true
		case ',':
			i = skipSpace(data, i+1)
		default:
			return nil, false
		}
	}
}

// isJSON says whether the value data starts with c ('{', '[').
func isJSON(data []byte, c byte) bool {
	i := skipSpace(data, 0)
	return i < len(data) && data[i] == c
}
