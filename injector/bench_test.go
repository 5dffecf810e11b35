package injector

import (
	"path/filepath"
	"testing"
)

// BenchmarkMutate is the pure part of one admission: a Deployment's pod.
func BenchmarkMutate(b *testing.B) {
	pod := readPod(&testing.T{}, filepath.Join("testdata", "mutate", "deployment-pod.yaml"))
	cfg := DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		if res := Mutate(pod, cfg, nil); !res.Injected {
			b.Fatal(res.Skip)
		}
	}
}

// BenchmarkMutateAlreadyInjected is a reinvocation: the no-op path.
func BenchmarkMutateAlreadyInjected(b *testing.B) {
	pod := Mutate(readPod(&testing.T{}, filepath.Join("testdata", "mutate", "deployment-pod.yaml")), DefaultConfig(), nil).Pod
	cfg := DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		if res := Mutate(pod, cfg, nil); res.Skip != SkipAlreadyInjected {
			b.Fatal(res.Skip)
		}
	}
}
