package webhook

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// member is one JSON member of a struct, as encoding/json writes it.
type member struct {
	index               int
	name                string
	omitEmpty, omitZero bool
	// key is, for a list of structs the API merges by a key (its
	// patchMergeKey: a container's name, a mount's mountPath), the index of
	// that field in the element; -1 otherwise.
	key int
}

var (
	objectMetaMembers = mustMembers(reflect.TypeFor[metav1.ObjectMeta]())
	podSpecMembers    = mustMembers(reflect.TypeFor[corev1.PodSpec]())
)

func mustMembers(t reflect.Type) []member {
	ms, ok := membersOf(t)
	if !ok {
		panic(fmt.Sprintf("%s has embedded fields: member encoding does not handle them", t))
	}
	return ms
}

// knownMembers caches membersOf: the reflection is paid once per type.
var knownMembers sync.Map // reflect.Type -> []member, nil for types with embedded fields

// membersOf lists the JSON members of struct type t; ok is false for a
// struct with embedded fields (whose members are spread), which the patch
// then handles whole.
func membersOf(t reflect.Type) ([]member, bool) {
	if v, ok := knownMembers.Load(t); ok {
		ms := v.([]member)
		return ms, ms != nil
	}
	ms := structMembers(t)
	knownMembers.Store(t, ms)
	return ms, ms != nil
}

func structMembers(t reflect.Type) []member {
	ms := []member{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if f.Anonymous {
			return nil
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		m := member{index: i, name: name, key: -1}
		for o := range strings.SplitSeq(opts, ",") {
			m.omitEmpty = m.omitEmpty || o == "omitempty"
			m.omitZero = m.omitZero || o == "omitzero"
		}
		if key := f.Tag.Get("patchMergeKey"); key != "" && f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			m.key = fieldNamed(f.Type.Elem(), key)
		}
		ms = append(ms, m)
	}
	return ms
}

// fieldNamed is the index of t's field whose JSON name is name, -1 if none.
func fieldNamed(t reflect.Type, name string) int {
	for i := range t.NumField() {
		f := t.Field(i)
		if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); n == name && !f.Anonymous {
			return i
		}
	}
	return -1
}

// omitted says whether encoding/json leaves the member out of its struct.
func (m member) omitted(v reflect.Value) bool {
	return m.omitZero && isZero(v) || m.omitEmpty && isEmpty(v)
}

func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		return z.IsZero()
	}
	if v.CanAddr() {
		if z, ok := v.Addr().Interface().(interface{ IsZero() bool }); ok {
			return z.IsZero()
		}
	}
	return v.IsZero()
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// same says whether two values of one type encode alike: deeply equal, or
// both empty lists or maps (nil and empty decode alike in the API, so a
// change between them is not one worth a patch).
func same(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	return equal(a, b)
}

// jsonValue is what to encode for v: through a pointer when v is
// addressable, as when the whole pod is encoded (encoding/json calls
// pointer-receiver MarshalJSON methods only on addressable values).
func jsonValue(v reflect.Value) any {
	if v.CanAddr() {
		return v.Addr().Interface()
	}
	return v.Interface()
}
