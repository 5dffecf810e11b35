package injector

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// TestUninjectThenMutate: injecting anew what Uninject gives back yields
// the very same pod, for the golden pods and 1000 random ones; so the CLI's
// --reinject changes only what the new configuration or a newly known
// command changes.
func TestUninjectThenMutate(t *testing.T) {
	check := func(t *testing.T, res Result, cfg Config) {
		t.Helper()
		back, images, err := Uninject(res.Pod)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := back.Annotations[annotations.Status]; ok {
			t.Fatal("the status annotation survived")
		}
		again := Mutate(back, cfg, images)
		if !again.Injected {
			t.Fatalf("not injected again: %s %v", again.Skip, again.Warnings)
		}
		var a, b any
		_ = json.Unmarshal([]byte(mustJSON(t, again.Pod)), &a)
		_ = json.Unmarshal([]byte(mustJSON(t, res.Pod)), &b)
		if where := firstDifference(a, b, ""); where != "" {
			t.Fatalf("injected anew, the pod differs at %s", where)
		}
	}
	for i, gc := range goldenCases() {
		t.Run(fmt.Sprintf("golden-%d-%s", i, gc.name), func(t *testing.T) {
			pod := readPod(t, filepath.Join("testdata", "mutate", gc.name+".yaml"))
			cfg := DefaultConfig()
			if gc.cfg != nil {
				gc.cfg(&cfg)
			}
			if res := Mutate(pod, cfg, gc.images); res.Injected {
				check(t, res, cfg)
			}
		})
	}
	n := 0
	for i := 0; i < 1000; i++ {
		r := rand.New(rand.NewSource(int64(i)))
		data := make([]byte, 32+r.Intn(512))
		r.Read(data)
		pod, cfg, images := randomPod(data)
		if _, err := json.Marshal(pod); err != nil {
			continue
		}
		if res := Mutate(pod, cfg, images); res.Injected {
			n++
			t.Run(fmt.Sprint(i), func(t *testing.T) { check(t, res, cfg) })
		}
	}
	if n < 100 {
		t.Fatalf("only %d random pods injected", n)
	}
}

func TestUninjectRefuses(t *testing.T) {
	pod := fargatePod("", "", nil)
	if _, _, err := Uninject(pod); err == nil || !strings.Contains(err.Error(), "not injected") {
		t.Fatalf("got %v", err)
	}
	pod.Annotations = map[string]string{annotations.Status: "{"}
	if _, _, err := Uninject(pod); err == nil || !strings.Contains(err.Error(), "inject the original manifest") {
		t.Fatalf("got %v", err)
	}
}

// firstDifference names the first path where two JSON values differ, with
// both values there.
func firstDifference(a, b any, path string) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		for k := range x {
			if d := firstDifference(x[k], y[k], path+"."+k); d != "" {
				return d
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				return fmt.Sprintf("%s.%s: missing, want %.200v", path, k, y[k])
			}
		}
		return ""
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			break
		}
		for i := range x {
			if d := firstDifference(x[i], y[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	default:
		if fmt.Sprint(a) == fmt.Sprint(b) {
			return ""
		}
	}
	return fmt.Sprintf("%s: got %.300v, want %.300v", path, a, b)
}
