package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// patchResponse answers with a JSON patch from the API server's bytes (raw)
// to the mutated pod. Two ways, the first when it is safe:
//
//   - sections: each member of metadata and spec that Mutate changed is
//     replaced whole ("add" on an object member replaces it), its value
//     encoded straight from the typed pod. It is safe when raw holds exactly
//     what our k8s.io/api encodes for every member replaced (nothing
//     unknown to lose), and cheap: no generic JSON trees, no diff walk.
//   - exact: otherwise, see exactPatch.
func patchResponse(raw []byte, original, mutated *corev1.Pod) (admission.Response, error) {
	patch, ok, err := sectionPatch(raw, original, mutated)
	if err != nil {
		return admission.Response{}, err
	}
	if !ok {
		return exactPatch(raw, original, mutated)
	}
	resp := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}}
	if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	return resp, nil
}

// sectionPatch returns the JSON patch replacing the changed members of
// metadata and spec (nil when nothing changed), or ok=false when that would
// lose something raw has.
func sectionPatch(raw []byte, original, mutated *corev1.Pod) (patch []byte, ok bool, err error) {
	if !apiequality.Semantic.DeepEqual(original.TypeMeta, mutated.TypeMeta) ||
		!apiequality.Semantic.DeepEqual(original.Status, mutated.Status) {
		return nil, false, nil
	}
	top, ok := jsonMembers(raw)
	if !ok {
		return nil, false, nil
	}
	metadata, okMeta := jsonMembers(top["metadata"])
	spec, okSpec := jsonMembers(top["spec"])
	if !okMeta || !okSpec {
		return nil, false, nil // no such section, or one the splitter leaves to the exact diff
	}
	var buf bytes.Buffer
	buf.Grow(4 * len(raw))
	for _, sec := range []struct {
		name          string
		raw           map[string][]byte
		members       []member
		before, after reflect.Value
	}{
		{"metadata", metadata, objectMetaMembers, reflect.ValueOf(&original.ObjectMeta).Elem(), reflect.ValueOf(&mutated.ObjectMeta).Elem()},
		{"spec", spec, podSpecMembers, reflect.ValueOf(&original.Spec).Elem(), reflect.ValueOf(&mutated.Spec).Elem()},
	} {
		for _, m := range sec.members {
			before, after := sec.before.Field(m.index), sec.after.Field(m.index)
			if reflect.DeepEqual(before.Interface(), after.Interface()) {
				continue // untouched: raw keeps it as it is, known or not
			}
			path := "/" + sec.name + "/" + escape(m.name)
			r, inRaw := sec.raw[m.name]
			if inRaw {
				// Replace only what raw says exactly as our types say it.
				was, err := m.encode(before)
				if err != nil {
					return nil, false, err
				}
				if !sameJSON(r, was) {
					return nil, false, nil
				}
			}
			now, err := m.encode(after)
			if err != nil {
				return nil, false, err
			}
			switch {
			case now != nil:
				writeOp(&buf, "add", path, now) // "add" replaces an existing member
			case inRaw:
				writeOp(&buf, "remove", path, nil)
			}
		}
	}
	if buf.Len() == 0 {
		return nil, true, nil
	}
	buf.WriteByte(']')
	return buf.Bytes(), true, nil
}

// jsonMembers splits a JSON object into its members' values, in one pass
// and without decoding them. data is valid JSON (the pod decoded from it).
// ok is false for anything but an object, and for what this splitter leaves
// to a real decoder: keys with escapes or non-ASCII bytes, duplicate keys.
func jsonMembers(data []byte) (map[string][]byte, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	members := map[string][]byte{}
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
		if _, dup := members[string(key)]; dup {
			return nil, false
		}
		members[string(key)] = data[start:stop]
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
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if i >= len(data) {
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

// member is one JSON member of a struct, as encoding/json writes it.
type member struct {
	index               int
	name                string
	omitEmpty, omitZero bool
}

var (
	objectMetaMembers = structMembers(reflect.TypeFor[metav1.ObjectMeta]())
	podSpecMembers    = structMembers(reflect.TypeFor[corev1.PodSpec]())
)

func structMembers(t reflect.Type) []member {
	var ms []member
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if f.Anonymous {
			panic(fmt.Sprintf("%s.%s is embedded: member encoding does not handle it", t, f.Name))
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		m := member{index: i, name: name}
		for o := range strings.SplitSeq(opts, ",") {
			m.omitEmpty = m.omitEmpty || o == "omitempty"
			m.omitZero = m.omitZero || o == "omitzero"
		}
		ms = append(ms, m)
	}
	return ms
}

// encode is the member's JSON as encoding/json writes it in its struct, nil
// when the member is left out (omitempty, omitzero).
func (m member) encode(v reflect.Value) (json.RawMessage, error) {
	if m.omitZero && isZero(v) || m.omitEmpty && isEmpty(v) {
		return nil, nil
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.name, err)
	}
	return b, nil
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

func writeOp(buf *bytes.Buffer, op, path string, value json.RawMessage) {
	if buf.Len() == 0 {
		buf.WriteByte('[')
	} else {
		buf.WriteByte(',')
	}
	p, _ := json.Marshal(path)
	fmt.Fprintf(buf, `{"op":%q,"path":%s`, op, p)
	if value != nil {
		buf.WriteString(`,"value":`)
		buf.Write(value)
	}
	buf.WriteByte('}')
}

// exactPatch is the fine-grained patch: admission.PatchResponseFromRaw, with
// two corrections. It diffs arrays index by index and diffs raw against our
// re-encoding of the pod; both can produce "remove" operations that Mutate
// never meant (it only adds): an element inserted before a user's init
// container shifts it, and a field this k8s.io/api does not know (a newer
// API server) is missing from our encoding. So when its patch removes
// anything:
//   - if raw has fields our encoding drops, the mutation is replayed onto raw
//     itself (a strategic merge patch from the decoded pod to the mutated
//     one, applied to raw), which keeps them;
//   - the patch is computed with arrays matched by their elements' names
//     (a changed list of containers, volumes or env vars is replaced as a
//     whole), so that nothing shifts.
func exactPatch(raw []byte, original, mutated *corev1.Pod) (admission.Response, error) {
	mutatedJSON, err := json.Marshal(mutated)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encode the mutated pod: %w", err)
	}
	resp := admission.PatchResponseFromRaw(raw, mutatedJSON)
	if !resp.Allowed {
		return admission.Response{}, fmt.Errorf("compute the patch: %s", resp.Result.Message)
	}
	if !hasRemove(resp.Patches) {
		return resp, nil
	}

	originalJSON, err := json.Marshal(original)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encode the pod: %w", err)
	}
	roundTrip, err := jsonpatch.CreatePatch(raw, originalJSON)
	if err != nil {
		return admission.Response{}, fmt.Errorf("diff the pod with its encoding: %w", err)
	}
	target := mutatedJSON
	if hasRemove(roundTrip) {
		smp, err := strategicpatch.CreateTwoWayMergePatch(originalJSON, mutatedJSON, corev1.Pod{})
		if err != nil {
			return admission.Response{}, fmt.Errorf("strategic merge patch of the mutation: %w", err)
		}
		if target, err = strategicpatch.StrategicMergePatch(raw, smp, corev1.Pod{}); err != nil {
			return admission.Response{}, fmt.Errorf("replay the mutation onto the API server's pod: %w", err)
		}
	}
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		return admission.Response{}, err
	}
	if err := json.Unmarshal(target, &b); err != nil {
		return admission.Response{}, err
	}
	var ops []jsonpatch.Operation
	diffKeyed(a, b, "", &ops)
	resp.Patches = ops
	resp.PatchType = nil
	if len(ops) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	return resp, nil
}

func hasRemove(ops []jsonpatch.Operation) bool {
	for _, o := range ops {
		if o.Operation == "remove" {
			return true
		}
	}
	return false
}

// diffKeyed appends to ops the JSON patch from a to b. Objects are diffed
// key by key; arrays element by element only when both have the same
// length and their elements the same identity (name, mountPath, ...),
// otherwise they are replaced whole.
func diffKeyed(a, b any, path string, ops *[]jsonpatch.Operation) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*ops = append(*ops, jsonpatch.NewOperation("replace", path, b))
			return
		}
		for _, k := range sortedKeys(av) {
			if _, ok := bv[k]; !ok {
				*ops = append(*ops, jsonpatch.NewOperation("remove", path+"/"+escape(k), nil))
			}
		}
		for _, k := range sortedKeys(bv) {
			p := path + "/" + escape(k)
			if old, ok := av[k]; ok {
				diffKeyed(old, bv[k], p, ops)
			} else {
				*ops = append(*ops, jsonpatch.NewOperation("add", p, bv[k]))
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			*ops = append(*ops, jsonpatch.NewOperation("replace", path, b))
			return
		}
		for i := range av {
			if identity(av[i]) != identity(bv[i]) {
				*ops = append(*ops, jsonpatch.NewOperation("replace", path, b))
				return
			}
		}
		for i := range av {
			diffKeyed(av[i], bv[i], path+"/"+strconv.Itoa(i), ops)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			*ops = append(*ops, jsonpatch.NewOperation("replace", path, b))
		}
	}
}

// identity is the merge key of a list element in the pod API (containers,
// volumes, env: name; volumeMounts: mountPath; ...), "" for other values.
func identity(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	for _, k := range []string{"name", "mountPath", "devicePath", "containerPort", "ip", "key"} {
		if x, ok := m[k]; ok {
			return fmt.Sprintf("%s=%v", k, x)
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// escape encodes a key for a JSON pointer (RFC 6901).
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
