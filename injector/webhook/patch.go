package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// patchResponse answers with a JSON patch from the API server's bytes (raw)
// to the mutated pod. Two ways, the first when it is safe:
//
//   - edits: the operations that say what Mutate did, found by walking the
//     typed pods before and after side by side: an "add" for each new init
//     container, volume, env var, mount or annotation, a replacement of
//     each changed member (a container's command). Only what is new is
//     encoded, and no user value is rewritten unless it changed, so that
//     fields unknown to our k8s.io/api survive wherever they are.
//   - exact: otherwise, see exactPatch.
func patchResponse(raw []byte, original, mutated *corev1.Pod) (admission.Response, error) {
	patch, ok, err := editPatch(raw, original, mutated)
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

// editPatch returns the JSON patch of the edits from original to mutated
// (nil when nothing changed), or ok=false when an edit cannot be made
// without losing something raw has, or is not one this walk knows (a
// removed element, a reordered list).
func editPatch(raw []byte, original, mutated *corev1.Pod) (patch []byte, ok bool, err error) {
	if !equal(reflect.ValueOf(&original.TypeMeta).Elem(), reflect.ValueOf(&mutated.TypeMeta).Elem()) ||
		!equal(reflect.ValueOf(&original.Status).Elem(), reflect.ValueOf(&mutated.Status).Elem()) {
		return nil, false, nil // only metadata and spec are walked
	}
	w := newOpWriter()
	defer w.free()
	top, ok := w.split(raw)
	if !ok {
		return nil, false, nil
	}
	rawMeta, _ := top.get("metadata")
	rawSpec, _ := top.get("spec")
	metadata, okMeta := w.split(rawMeta)
	spec, okSpec := w.split(rawSpec)
	if !okMeta || !okSpec {
		return nil, false, nil // no such section, or one the splitter leaves to the exact diff
	}
	ok = w.object("/metadata", metadata, objectMetaMembers, reflect.ValueOf(&original.ObjectMeta).Elem(), reflect.ValueOf(&mutated.ObjectMeta).Elem()) &&
		w.object("/spec", spec, podSpecMembers, reflect.ValueOf(&original.Spec).Elem(), reflect.ValueOf(&mutated.Spec).Elem())
	if w.err != nil {
		return nil, false, fmt.Errorf("encode the patch: %w", w.err)
	}
	if !ok {
		return nil, false, nil
	}
	return w.patch(), true, nil
}

// object writes the edits of a struct whose JSON in raw is split into
// members. It returns false when one cannot be made.
func (w *opWriter) object(path string, raw jsonObject, members []member, before, after reflect.Value) bool {
	for _, m := range members {
		b, a := before.Field(m.index), after.Field(m.index)
		if same(b, a) {
			continue // untouched: raw keeps it as it is, known or not
		}
		r, inRaw := raw.get(m.name)
		p := path + "/" + escape(m.name)
		mark := w.mark()
		switch {
		case b.Kind() == reflect.Slice && m.key >= 0:
			if w.list(p, m.key, r, inRaw, b, a) {
				continue
			}
		case b.Kind() == reflect.Map && b.Type().Key().Kind() == reflect.String:
			if w.dict(p, r, inRaw, b, a) {
				continue
			}
		}
		w.reset(mark)
		if !w.member(p, m, r, inRaw, b, a) {
			return false
		}
	}
	return true
}

// member replaces a member whole ("add" replaces an existing member). raw
// must hold exactly what our types encode for its value before, or
// something unknown to them would be lost.
func (w *opWriter) member(path string, m member, raw []byte, inRaw bool, before, after reflect.Value) bool {
	if inRaw {
		if m.omitted(before) {
			return false // raw has what our types leave out
		}
		if !w.encodesAs(before, raw) {
			return false
		}
	}
	switch {
	case !m.omitted(after):
		w.op("add", path, after)
	case inRaw:
		w.op("remove", path, reflect.Value{})
	}
	return true
}

// list writes the edits of a list whose elements are identified by a key
// (name, mountPath): new elements added before the user's (init
// containers) or after them (volumes, env vars, mounts), and the user's
// elements, in their order, edited in place.
func (w *opWriter) list(path string, key int, raw []byte, inRaw bool, before, after reflect.Value) bool {
	nb, na := before.Len(), after.Len()
	if nb == 0 {
		w.addList(path, after, key) // nothing of the user's in it: the new list whole
		return true
	}
	if !inRaw || na < nb {
		return false
	}
	elems, ok := jsonElements(raw)
	if !ok || len(elems) != nb {
		return false
	}
	off := -1
	for _, o := range []int{0, na - nb} {
		if keysMatch(before, after, o, key) {
			off = o
			break
		}
	}
	if off < 0 {
		return false // reordered, or elements removed: not an edit this walk makes
	}
	for k := range nb {
		b, a := before.Index(k), after.Index(off+k)
		if !same(b, a) && !w.element(path+"/"+strconv.Itoa(k), elems[k], b, a) {
			return false
		}
	}
	for j := range off {
		w.addElement(path+"/"+strconv.Itoa(j), after.Index(j), key) // each lands before the user's
	}
	for j := off + nb; j < na; j++ {
		w.addElement(path+"/-", after.Index(j), key)
	}
	return true
}

// keysMatch says whether the elements of before are those of after from
// offset off on, by their keys.
func keysMatch(before, after reflect.Value, off, key int) bool {
	for k := range before.Len() {
		if !before.Index(k).Field(key).Equal(after.Index(off + k).Field(key)) {
			return false
		}
	}
	return true
}

// element writes the edits of one element of a list: member by member, or
// the element replaced whole when raw holds exactly what our types encode.
func (w *opWriter) element(path string, raw []byte, before, after reflect.Value) bool {
	if members, ok := membersOf(before.Type()); ok {
		if fields, ok := w.split(raw); ok {
			mark := w.mark()
			if w.object(path, fields, members, before, after) {
				return true
			}
			w.reset(mark)
		}
	}
	if !w.encodesAs(before, raw) {
		return false
	}
	w.op("replace", path, after)
	return true
}

// dict writes the edits of a map with string keys (annotations, labels):
// an "add" for each key that is new or changed. A key removed is not an
// edit this walk makes.
func (w *opWriter) dict(path string, raw []byte, inRaw bool, before, after reflect.Value) bool {
	if before.Len() == 0 {
		w.op("add", path, after)
		return true
	}
	if !inRaw || !isJSON(raw, '{') {
		return false
	}
	var keys []string
	for it := after.MapRange(); it.Next(); {
		if b := before.MapIndex(it.Key()); !b.IsValid() || !same(b, it.Value()) {
			keys = append(keys, it.Key().String())
		}
	}
	for it := before.MapRange(); it.Next(); {
		if !after.MapIndex(it.Key()).IsValid() {
			return false
		}
	}
	slices.Sort(keys) // one pod, one patch
	for _, k := range keys {
		w.op("add", path+"/"+escape(k), after.MapIndex(reflect.ValueOf(k).Convert(after.Type().Key())))
	}
	return true
}

// encodesAs says whether raw is what our types encode for v.
func (w *opWriter) encodesAs(v reflect.Value, raw []byte) bool {
	enc, err := json.Marshal(jsonValue(v))
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return false
	}
	return sameJSON(raw, enc)
}
