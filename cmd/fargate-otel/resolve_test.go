package main

import (
	"net"
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
// Each row is a real failure the CLI meets on loopback: a registry that
// refuses (HTTP 401), one that hangs past --resolve-timeout, a closed port,
// and, on 127.0.0.2 (which go-containerregistry, unlike 127.0.0.1, asks
// over HTTPS only), a plain-HTTP registry and one whose certificate comes
// from an unknown CA. (ECR credentials, not found, no platform and the
// rest are in injector/entrypoint's TestLocalHintsSpeakOfThisMachine: ECR
// would need AWS.)
func TestResolveHintsSpeakOfThisMachine(t *testing.T) {
	push := func(t *testing.T, opts registrytest.Options) (*registrytest.Registry, string) {
		reg := registrytest.New(t, opts)
		ref, _ := reg.PushIndex(t, "shop/cache:6", registrytest.Image{Platform: "linux/amd64", Entrypoint: []string{"/cache-server"}})
		return reg, ref
	}
	for _, tc := range []struct {
		name string
		// setup returns the image; want are the parts of the warning.
		setup func(t *testing.T) (image string, want []string)
	}{
		{"HTTP 401", func(t *testing.T) (string, []string) {
			_, ref := push(t, registrytest.Options{User: "u", Password: "p"})
			return ref, []string{"refused access (HTTP 401); --resolve reads only public images and ECR (with this machine's AWS credentials); give the command with --command"}
		}},
		{"timeout", func(t *testing.T) (string, []string) {
			reg, ref := push(t, registrytest.Options{})
			reg.Hang()
			return ref, []string{"did not answer within", "check that this machine can reach " + reg.Host + ", or raise --resolve-timeout, or give the command with --command"}
		}},
		{"unreachable (closed port)", func(t *testing.T) (string, []string) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			_ = l.Close()
			return addr + "/shop/cache:6", []string{"cannot reach registry " + addr, "connection refused", "check that this machine can reach " + addr + ", or give the command with --command"}
		}},
		{"plain HTTP", func(t *testing.T) (string, []string) {
			reg, ref := push(t, registrytest.Options{Listen: "127.0.0.2:0"})
			return ref, []string{"registry " + reg.Host + " speaks plain HTTP; pass --insecure-registry " + reg.Host + " to let this machine read it over plain HTTP"}
		}},
		{"TLS, unknown CA", func(t *testing.T) (string, []string) {
			reg, ref := push(t, registrytest.Options{Listen: "127.0.0.2:0", TLS: true})
			return ref, []string{"TLS certificate of registry " + reg.Host + " is not trusted", "unknown authority", "add the registry's CA to this machine's trust store (or SSL_CERT_FILE)"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image, want := tc.setup(t)
			input := "apiVersion: v1\nkind: Pod\nmetadata: {name: cache, namespace: shop}\nspec:\n  containers:\n  - name: cache\n    image: " + image + "\n"
			r := runCLI(t, []byte(input), "inject", "-f", "-", "--resolve", "--resolve-timeout", "1s")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, w := range append(want, "reading the entrypoint of image "+image+" failed", "give it with --command CONTAINER=JSON") {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("the warning does not say %q:\n%s", w, r.stderr)
				}
			}
			for _, never := range []string{"injector", "imagePullSecret", "service account"} {
				if strings.Contains(r.stderr, never) {
					t.Errorf("the report speaks of %q, not of this machine:\n%s", never, r.stderr)
				}
			}
		})
	}
}
