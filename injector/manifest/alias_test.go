package manifest

import "testing"

// TestAliasBomb: exponential aliases neither hang nor blow up memory (the
// YAML libraries cap alias expansion).
func TestAliasBomb(t *testing.T) {
	in := `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
kind: Pod
apiVersion: v1
`
	out, _, err := Inject([]byte(in), Options{Config: testConfig()})
	if err == nil && string(out) != in {
		t.Fatalf("an alias bomb without a pod template was changed")
	}
}
