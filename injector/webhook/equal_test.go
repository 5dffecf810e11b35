package webhook

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/randfill"
)

// TestEqualAgreesWithDeepEqual: on random pods, their copies, copies with
// one member of the spec or of a container swapped for another random
// one, and pods through a JSON round trip (nil and empty lists, a
// quantity's cached string), equal says what reflect.DeepEqual says.
func TestEqualAgreesWithDeepEqual(t *testing.T) {
	fill := func(seed int64) *corev1.Pod {
		f := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).MaxDepth(8).Funcs(
			func(q *resource.Quantity, c randfill.Continue) {
				*q = *resource.NewMilliQuantity(c.Int63n(4000), resource.DecimalSI)
			},
			func(v *metav1.FieldsV1, c randfill.Continue) { v.SetRawString(`{"f:spec":{}}`) })
		var pod corev1.Pod
		f.Fill(&pod)
		return &pod
	}
	r := rand.New(rand.NewSource(1))
	var differ, agree int
	check := func(t *testing.T, a, b *corev1.Pod) {
		t.Helper()
		want := reflect.DeepEqual(a, b)
		if got := equal(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()); got != want {
			t.Fatalf("equal %v, reflect.DeepEqual %v", got, want)
		}
		if want {
			agree++
		} else {
			differ++
		}
	}
	for seed := range int64(300) {
		a := fill(seed)
		check(t, a, a.DeepCopy())

		b, other := a.DeepCopy(), fill(seed+1000)
		field := r.Intn(reflect.TypeFor[corev1.PodSpec]().NumField())
		reflect.ValueOf(&b.Spec).Elem().Field(field).Set(reflect.ValueOf(&other.Spec).Elem().Field(field))
		check(t, a, b)

		if len(a.Spec.Containers) > 0 && len(other.Spec.Containers) > 0 {
			c := a.DeepCopy()
			field := r.Intn(reflect.TypeFor[corev1.Container]().NumField())
			reflect.ValueOf(&c.Spec.Containers[0]).Elem().Field(field).Set(reflect.ValueOf(&other.Spec.Containers[0]).Elem().Field(field))
			check(t, a, c)
		}

		data, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var round corev1.Pod
		if err := json.Unmarshal(data, &round); err != nil {
			t.Fatal(err)
		}
		check(t, a, &round)
	}
	if differ < 100 || agree < 300 {
		t.Fatalf("the cases do not exercise both answers: %d equal, %d different", agree, differ)
	}
}
