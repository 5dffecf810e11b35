package webhook

import (
	"reflect"
	"sync"
)

// What the patch adds whole is mostly the same from one pod to the next:
// the collector container (with its rendered config, a few KB of escaped
// YAML), the installer, the volumes. Their JSON is remembered, keyed by
// type and name, and reused only for a value equal to the one it was
// encoded from (compared field by field with a private deep copy, which
// costs a tenth of encoding), so a pod-specific size or config simply
// misses. Bounded: a few values per name, and it starts over when full.
const (
	encodedPerName = 4
	encodedNames   = 256
)

type encodedKey struct {
	t    reflect.Type
	name string
}

type encodedValue struct {
	v    reflect.Value // a deep copy, never modified
	json []byte
}

var encoded = struct {
	sync.RWMutex
	m map[encodedKey][]encodedValue
}{m: map[encodedKey][]encodedValue{}}

// lookupEncoded returns the JSON of v (an element of a list, identified by
// its field key) if it was remembered.
func lookupEncoded(v reflect.Value, key int) ([]byte, bool) {
	k := encodedKey{v.Type(), v.Field(key).String()}
	encoded.RLock()
	vs := encoded.m[k]
	encoded.RUnlock()
	for _, e := range vs {
		if equal(e.v.Elem(), v) {
			return e.json, true
		}
	}
	return nil, false
}

// rememberEncoded keeps data as the JSON of v, when v's type can be deep
// copied (the API's types can).
func rememberEncoded(v reflect.Value, key int, data []byte) {
	if !v.CanAddr() {
		return
	}
	dc := v.Addr().MethodByName("DeepCopy")
	if !dc.IsValid() || dc.Type().NumIn() != 0 || dc.Type().NumOut() != 1 || dc.Type().Out(0) != v.Addr().Type() {
		return
	}
	c := encodedValue{v: dc.Call(nil)[0], json: data}
	k := encodedKey{v.Type(), v.Field(key).String()}
	encoded.Lock()
	defer encoded.Unlock()
	if len(encoded.m) >= encodedNames {
		encoded.m = map[encodedKey][]encodedValue{}
	}
	vs := encoded.m[k]
	if len(vs) >= encodedPerName {
		vs = vs[1:]
	}
	// A new slice: readers may hold the old one.
	encoded.m[k] = append(append(make([]encodedValue, 0, len(vs)+1), vs...), c)
}
