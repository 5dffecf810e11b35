package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
)

// TestInjectResolve: --resolve reads ENTRYPOINT and CMD of the linux/amd64
// image of a multi-arch index from a real registry (in-process, loopback),
// and a look-up that fails leaves the container unwrapped with a warning.
func TestInjectResolve(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	ref, _ := reg.PushIndex(t, "shop/cache:6",
		registrytest.Image{Platform: "linux/arm64", Entrypoint: []string{"/arm"}},
		registrytest.Image{Platform: "linux/amd64", Entrypoint: []string{"/cache-server"}, Cmd: []string{"--port=6379", "--note=$HOME"}},
	)
	missing := reg.Host + "/shop/missing:1"
	input := `apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: shop}
spec:
  containers:
  - name: cache
    image: ` + ref + `
  - name: gone
    image: ` + missing + `
`
	r := runCLI(t, []byte(input), "inject", "-f", "-", "--resolve", "--insecure-registry", reg.Host)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var pod corev1.Pod
	strict(t, r.stdout, &pod)
	cmd := pod.Spec.Containers[0].Command
	sep := -1
	for i, w := range cmd {
		if w == "--" {
			sep = i
			break
		}
	}
	if len(cmd) == 0 || cmd[0] != injector.TeePath || sep < 0 || strings.Join(cmd[sep+1:], " ") != "/cache-server --port=6379 --note=$$HOME" {
		t.Fatalf("cache command %q: want the wrapper then the amd64 image's ENTRYPOINT and CMD ($ escaped)", cmd)
	}
	if len(pod.Spec.Containers[1].Command) != 0 {
		t.Fatalf("the container whose image is missing was wrapped: %q", pod.Spec.Containers[1].Command)
	}
	if !strings.Contains(r.stderr, "container gone is not wrapped: reading the entrypoint of image "+missing+" failed") ||
		!strings.Contains(r.stderr, "meanwhile its logs are read from the kubelet (log source api") {
		t.Fatalf("no warning for the failed look-up:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "let --resolve read it") {
		t.Fatalf("the --resolve hint was given although --resolve was used")
	}
}

// TestResolveHintsSpeakOfThisMachine: a failed look-up says what to do on
// the machine that runs the CLI, with the CLI's flags, not the injector's.
func TestResolveHintsSpeakOfThisMachine(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{User: "u", Password: "p"})
	ref, _ := reg.PushIndex(t, "shop/cache:6", registrytest.Image{Platform: "linux/amd64", Entrypoint: []string{"/cache-server"}})
	input := "apiVersion: v1\nkind: Pod\nmetadata: {name: cache, namespace: shop}\nspec:\n  containers:\n  - name: cache\n    image: " + ref + "\n"
	r := runCLI(t, []byte(input), "inject", "-f", "-", "--resolve", "--resolve-timeout", "5s")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "refused access (HTTP 401); --resolve reads only public images and ECR (with this machine's AWS credentials); give the command with --command") ||
		strings.Contains(r.stderr, "injector") || strings.Contains(r.stderr, "imagePullSecret") {
		t.Fatalf("the hint should speak of this machine and --command, not of the injector or pull secrets:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "give it with --command CONTAINER=JSON") {
		t.Fatalf("the warning should offer --command:\n%s", r.stderr)
	}
}
