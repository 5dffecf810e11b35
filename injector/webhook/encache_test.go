package webhook

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestEncodedValuesAreReusedOnlyWhenEqual: the JSON of an added element
// comes from the cache only for a value equal to the one it was encoded
// from, and changing a value after it was encoded does not change what the
// cache holds.
func TestEncodedValuesAreReusedOnlyWhenEqual(t *testing.T) {
	key := fieldNamed(reflect.TypeFor[corev1.Container](), "name")
	encode := func(c *corev1.Container) string {
		t.Helper()
		w := newOpWriter()
		defer w.free()
		data, ok := w.elementJSON(reflect.ValueOf(c).Elem(), key)
		if !ok || w.err != nil {
			t.Fatalf("not encoded: %v", w.err)
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(want) {
			t.Fatalf("JSON %s, want %s", data, want)
		}
		return string(data)
	}
	c := &corev1.Container{Name: "cache-test", Image: "a:1", Env: []corev1.EnvVar{{Name: "X", Value: "1"}}}
	first := encode(c)
	if _, ok := lookupEncoded(reflect.ValueOf(c).Elem(), key); !ok {
		t.Fatal("not remembered")
	}
	if again := encode(c.DeepCopy()); again != first {
		t.Fatalf("an equal value encodes as %s, want %s", again, first)
	}
	c.Env[0].Value = "2" // the caller's value changes after encoding
	if changed := encode(c); changed == first {
		t.Fatal("a changed value got the old JSON")
	}
	c.Env[0].Value = "1"
	if back := encode(c); back != first {
		t.Fatalf("the first value again encodes as %s, want %s", back, first)
	}
}
