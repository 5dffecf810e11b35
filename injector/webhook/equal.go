package webhook

import (
	"maps"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// equal says whether two values of the API's types are the same, as
// reflect.DeepEqual does but without its cost: they hold no cycles, so no
// set of visited pointers is kept (DeepEqual's set is most of its
// allocations), and nothing is copied into interfaces. Like DeepEqual, a
// nil slice or map is not equal to an empty one. Unlike it, the quantities
// of a ResourceList are compared by what they encode to (sameQuantity).
// Whatever equal calls equal encodes to the same JSON.
func equal(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if !equal(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		if a.UnsafePointer() == b.UnsafePointer() {
			return true
		}
		fallthrough
	case reflect.Array:
		for i := range a.Len() {
			if !equal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		if a.UnsafePointer() == b.UnsafePointer() {
			return true
		}
		if a.CanInterface() {
			switch am := a.Interface().(type) {
			case map[string]string: // labels, annotations, selectors
				return maps.Equal(am, b.Interface().(map[string]string))
			case corev1.ResourceList: // requests, limits
				bm := b.Interface().(corev1.ResourceList)
				for k, q := range am {
					r, ok := bm[k]
					if !ok || !sameQuantity(q, r) {
						return false
					}
				}
				return true
			}
		}
		for it := a.MapRange(); it.Next(); {
			v := b.MapIndex(it.Key())
			if !v.IsValid() || !equal(it.Value(), v) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return a.UnsafePointer() == b.UnsafePointer() || equal(a.Elem(), b.Elem())
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return a.Elem().Type() == b.Elem().Type() && equal(a.Elem(), b.Elem())
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	}
	return false // functions, channels, unsafe pointers: not in the API's types
}

// sameQuantity says whether two quantities encode alike: a quantity
// encodes as its canonical form (value and format) or as the string it was
// parsed from, which it keeps only when that string is the canonical form.
// (Cmp may convert its operands: they are copies.)
func sameQuantity(a, b resource.Quantity) bool {
	return a.Format == b.Format && a.Cmp(b) == 0
}
