package injector

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// mutateChecked runs Mutate and checks the properties every result must
// have, whatever the pod: the input is not modified, nothing of the user's
// is removed or reordered, a second pass changes nothing, and what was
// injected is locked down.
func mutateChecked(t testing.TB, pod *corev1.Pod, cfg Config, images Images) Result {
	t.Helper()
	before := mustJSON(t, pod)
	res := Mutate(pod, cfg, images)
	if after := mustJSON(t, pod); after != before {
		t.Fatalf("Mutate modified its input")
	}
	checkInvariants(t, pod, res, cfg, images)
	return res
}

func checkInvariants(t testing.TB, in *corev1.Pod, res Result, cfg Config, images Images) {
	t.Helper()
	if res.Pod == nil {
		t.Fatalf("nil pod in result (skip %q)", res.Skip)
	}
	if res.Pod == in {
		t.Fatalf("result shares the input pod")
	}
	if !res.Injected {
		if res.Skip == "" {
			t.Fatalf("neither injected nor skipped")
		}
		if mustJSON(t, res.Pod) != mustJSON(t, in) {
			t.Fatalf("skipped (%s) but the pod changed", res.Skip)
		}
		return
	}
	if res.Skip != "" || res.Status == nil {
		t.Fatalf("injected with skip %q / status %v", res.Skip, res.Status)
	}

	// Nothing of the user's removed or reordered.
	cmp, err := comparable(in, res.Pod)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal([]byte(mustJSON(t, in)), &a)
	_ = json.Unmarshal([]byte(mustJSON(t, cmp)), &b)
	if err := contains(a, b, ""); err != nil {
		t.Fatalf("a user field was removed or reordered: %v", err)
	}

	// The app's security contexts are untouched.
	if !reflect.DeepEqual(in.Spec.SecurityContext, res.Pod.Spec.SecurityContext) {
		t.Fatalf("pod securityContext changed")
	}

	// Injected containers are locked down.
	ours := 0
	for _, c := range append(append([]corev1.Container{}, res.Pod.Spec.InitContainers...), res.Pod.Spec.Containers...) {
		if c.Name != InitContainerName && c.Name != CollectorContainerName && c.Name != FollowerContainerName {
			continue
		}
		ours++
		sc := c.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Fatalf("container %s is not locked down: %+v", c.Name, sc)
		}
	}
	if ours == 0 {
		t.Fatalf("injected, but no collector")
	}

	// Status annotation matches.
	var st Status
	if err := json.Unmarshal([]byte(res.Pod.Annotations[annotations.Status]), &st); err != nil {
		t.Fatalf("status annotation: %v", err)
	}
	if !reflect.DeepEqual(&st, res.Status) {
		t.Fatalf("status annotation %+v differs from Result.Status %+v", st, *res.Status)
	}

	checkLogSources(t, res, cfg)

	// Idempotent.
	again := Mutate(res.Pod, cfg, images)
	if again.Injected || again.Skip != SkipAlreadyInjected || mustJSON(t, again.Pod) != mustJSON(t, res.Pod) {
		t.Fatalf("a second pass changed the pod (skip %q)", again.Skip)
	}
}

// comparable returns a copy of out in which wrapped commands are put back
// to what they were, after checking that the wrapper runs exactly that.
func comparable(in, out *corev1.Pod) (*corev1.Pod, error) {
	oc := out.DeepCopy()
	offset := 0
	for _, c := range oc.Spec.InitContainers {
		if c.Name == InitContainerName || c.Name == CollectorContainerName || c.Name == FollowerContainerName {
			offset++
			continue
		}
		break
	}
	if len(oc.Spec.InitContainers) < offset+len(in.Spec.InitContainers) || len(oc.Spec.Containers) < len(in.Spec.Containers) {
		return nil, fmt.Errorf("containers were removed")
	}
	fix := func(ic, c *corev1.Container) error {
		if len(c.Command) == 0 || c.Command[0] != TeePath {
			return nil
		}
		sep := slices.Index(c.Command, "--")
		if sep < 0 {
			return fmt.Errorf("container %s: wrapped command without --: %q", c.Name, c.Command)
		}
		if len(ic.Command) > 0 && !slices.Equal(c.Command[sep+1:], ic.Command) {
			return fmt.Errorf("container %s: wrapper runs %q, the spec said %q", c.Name, c.Command[sep+1:], ic.Command)
		}
		if !slices.Equal(c.Args, ic.Args) {
			return fmt.Errorf("container %s: args changed from %q to %q", c.Name, ic.Args, c.Args)
		}
		c.Command = slices.Clone(ic.Command)
		return nil
	}
	for i := range in.Spec.InitContainers {
		if err := fix(&in.Spec.InitContainers[i], &oc.Spec.InitContainers[offset+i]); err != nil {
			return nil, err
		}
	}
	for i := range in.Spec.Containers {
		if err := fix(&in.Spec.Containers[i], &oc.Spec.Containers[i]); err != nil {
			return nil, err
		}
	}
	return oc, nil
}

// contains checks that everything in a is in b: every key of an object with
// the same value, and the elements of an array in the same order (b may
// have more).
func contains(a, b any, path string) error {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: object became %T", path, b)
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok {
				return fmt.Errorf("%s/%s: removed", path, k)
			}
			if err := contains(x, y, path+"/"+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		bv, ok := b.([]any)
		if !ok {
			return fmt.Errorf("%s: array became %T", path, b)
		}
		j := 0
		for i, x := range av {
			for j < len(bv) && contains(x, bv[j], "") != nil {
				j++
			}
			if j == len(bv) {
				return fmt.Errorf("%s/%d: removed or reordered", path, i)
			}
			j++
		}
		return nil
	default:
		if !reflect.DeepEqual(a, b) {
			return fmt.Errorf("%s: %v became %v", path, a, b)
		}
		return nil
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
