package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

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
