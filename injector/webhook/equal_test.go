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

// TestEqualMeansSameJSON: on random pods, their copies, copies with one
// member of the spec or of a container swapped for another random one, and
// pods through a JSON round trip (nil and empty lists, quantities parsed
// back), what equal calls equal encodes alike, and what reflect.DeepEqual
// calls equal, equal does too.
func TestEqualMeansSameJSON(t *testing.T) {
	fill := func(seed int64) *corev1.Pod {
		f := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).MaxDepth(8).Funcs(
			func(q *resource.Quantity, c randfill.Continue) {
				switch c.Intn(4) {
				case 0:
					*q = *resource.NewMilliQuantity(c.Int63n(4000), resource.DecimalSI)
				case 1:
					*q = *resource.NewQuantity(c.Int63n(1<<40), resource.BinarySI)
				case 2:
					*q = resource.MustParse([]string{"1", "1000m", "0.5", "500m", "1Gi", "1024Mi", "1e3", "1k"}[c.Intn(8)])
				default:
					*q = *resource.NewScaledQuantity(c.Int63n(100), resource.Scale(c.Intn(6)*3-6))
				}
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
		got := equal(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
		if reflect.DeepEqual(a, b) && !got {
			t.Fatal("reflect.DeepEqual says equal, equal does not")
		}
		if got && string(mustMarshal(t, a)) != string(mustMarshal(t, b)) {
			t.Fatalf("equal, yet encoded differently:\n%s\n%s", mustMarshal(t, a), mustMarshal(t, b))
		}
		if got {
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

// TestSameQuantityIsSameJSON: quantities called the same encode alike,
// however they were written or made; and of one format, those that encode
// alike are called the same (of two formats, "1" and "1" are not: a miss
// costs a patch operation, never a wrong one).
func TestSameQuantityIsSameJSON(t *testing.T) {
	var qs []resource.Quantity
	for _, s := range []string{"0", "0m", "1", "1000m", "1k", "1e3", "1000", "0.5", "500m", "5e-1",
		"1Gi", "1024Mi", "1073741824", "1G", "100M", "1e30", "12345678901234567890m"} {
		qs = append(qs, resource.MustParse(s))
	}
	qs = append(qs,
		*resource.NewQuantity(1024, resource.BinarySI), *resource.NewQuantity(1024, resource.DecimalSI),
		*resource.NewMilliQuantity(1000, resource.DecimalSI), *resource.NewScaledQuantity(1, resource.Giga),
		resource.Quantity{})
	spellings := 0
	for i := range qs {
		for j := range qs {
			a, b := qs[i], qs[j]
			alike := string(mustMarshal(t, &a)) == string(mustMarshal(t, &b))
			got := sameQuantity(qs[i], qs[j])
			switch {
			case got && !alike:
				t.Errorf("%s and %s: called the same, encoded differently", mustMarshal(t, &a), mustMarshal(t, &b))
			case !got && alike && a.Format == b.Format:
				t.Errorf("%s and %s: one format, encoded alike, not called the same", mustMarshal(t, &a), mustMarshal(t, &b))
			}
			if got && i != j {
				spellings++
			}
		}
	}
	if spellings == 0 {
		t.Fatal("no two different spellings of one quantity")
	}
}
