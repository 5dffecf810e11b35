package entrypoint_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
)

// TestLocalHintsSpeakOfThisMachine: with OnThisMachine (the CLI's
// --resolve), every kind of failed look-up gets a hint about this machine
// and the CLI's flags, never about the injector, its service account or
// pull secrets. Each row is a real failure: a registry on loopback that
// refuses, hangs, speaks plain HTTP or shows a certificate of an unknown
// CA, a closed port, a server that answers 500, and ECR whose credential
// helper fails (the registry protocol stays real).
func TestLocalHintsSpeakOfThisMachine(t *testing.T) {
	const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	for _, tc := range []struct {
		name   string
		reason entrypoint.Reason
		// setup returns the image and the options of the resolver.
		setup func(t *testing.T) (string, entrypoint.Options)
		// want are the parts of the hint; machine says it must name this
		// machine (the failures that depend on where the look-up runs).
		want    []string
		machine bool
	}{
		{
			name: "ECR credentials", reason: entrypoint.ReasonUnauthorized, machine: true,
			want: []string{"AWS credentials", "ecr:GetAuthorizationToken", "AWS_PROFILE", "--command"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{TLS: true, Hostname: ecrHost, User: "AWS", Password: "token"})
				ref, _ := reg.Push(t, "team/a:1", registrytest.Image{Entrypoint: []string{"/a"}})
				return ref, entrypoint.Options{Transport: reg.Transport, ECR: &ecrHelper{err: errors.New("no IAM role")}}
			},
		},
		{
			name: "HTTP 401", reason: entrypoint.ReasonUnauthorized, machine: true,
			want: []string{"only public images and ECR", "AWS credentials", "--command"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{User: "u", Password: "p"})
				ref, _ := reg.Push(t, "shop/cache:6", registrytest.Image{Entrypoint: []string{"/cache"}})
				return ref, entrypoint.Options{Transport: reg.Transport, DisableECR: true}
			},
		},
		{
			name: "look-up budget", reason: entrypoint.ReasonTimeout, machine: true,
			want: []string{"can reach", "--resolve-timeout", "--command"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{TLS: true})
				ref, _ := reg.Push(t, "slow:1", registrytest.Image{Entrypoint: []string{"/slow"}})
				reg.Hang()
				return ref, entrypoint.Options{Transport: reg.Transport, DisableECR: true, Budget: 300 * time.Millisecond, FetchTimeout: time.Minute}
			},
		},
		{
			name: "fetch timeout", reason: entrypoint.ReasonTimeout, machine: true,
			want: []string{"can reach", "--resolve-timeout", "--command"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{TLS: true})
				ref, _ := reg.Push(t, "stuck:1", registrytest.Image{Entrypoint: []string{"/stuck"}})
				reg.Hang()
				return ref, entrypoint.Options{Transport: reg.Transport, DisableECR: true, Budget: 10 * time.Second, FetchTimeout: 300 * time.Millisecond}
			},
		},
		{
			name: "unreachable (closed port)", reason: entrypoint.ReasonUnreachable, machine: true,
			want: []string{"can reach 127.0.0.1:", "--command"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				return closedPort(t) + "/shop/web:1", entrypoint.Options{Transport: http.DefaultTransport, DisableECR: true}
			},
		},
		{
			name: "plain HTTP", reason: entrypoint.ReasonPlainHTTP, machine: true,
			want: []string{"--insecure-registry registry.internal.test:", "plain HTTP"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{Hostname: "registry.internal.test"})
				ref, _ := reg.Push(t, "app:1", registrytest.Image{Entrypoint: []string{"/plain"}})
				return ref, entrypoint.Options{Transport: reg.Transport, DisableECR: true}
			},
		},
		{
			name: "TLS, unknown CA", reason: entrypoint.ReasonTLS, machine: true,
			want: []string{"CA", "trust store", "SSL_CERT_FILE"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{TLS: true, Hostname: "registry.internal.test"})
				ref, _ := reg.Push(t, "app:1", registrytest.Image{Entrypoint: []string{"/x"}})
				return ref, entrypoint.Options{Transport: reg.NewTransport(false), DisableECR: true}
			},
		},
		// The rest do not depend on where the look-up runs: the webhook's
		// hint, which must not speak of the injector either.
		{
			name: "not found", reason: entrypoint.ReasonNotFound,
			want: []string{"check the image name and tag"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{})
				return reg.Host + "/shop/missing:1", entrypoint.Options{Transport: reg.Transport, DisableECR: true}
			},
		},
		{
			name: "no linux/amd64 manifest", reason: entrypoint.ReasonNoPlatform,
			want: []string{"publish the image for linux/amd64"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				reg := registrytest.New(t, registrytest.Options{})
				ref, _ := reg.PushIndex(t, "shop/arm:1", registrytest.Image{Platform: "linux/arm64", Entrypoint: []string{"/arm"}})
				return ref, entrypoint.Options{Transport: reg.Transport, DisableECR: true}
			},
		},
		{
			name: "invalid reference", reason: entrypoint.ReasonInvalid,
			want: []string{"fix the image reference"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				return "UPPER/Case::bad", entrypoint.Options{DisableECR: true}
			},
		},
		{
			// A loopback registry is asked over HTTPS and then plain HTTP:
			// its 500 is a registry error, not a call for --insecure-registry.
			name: "registry error (HTTP 500)", reason: entrypoint.ReasonRegistry,
			want: []string{"--command"},
			setup: func(t *testing.T) (string, entrypoint.Options) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					http.Error(w, "boom", http.StatusInternalServerError)
				}))
				t.Cleanup(srv.Close)
				return strings.TrimPrefix(srv.URL, "http://") + "/shop/web:1", entrypoint.Options{Transport: http.DefaultTransport, DisableECR: true}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image, opts := tc.setup(t)
			opts.OnThisMachine = true
			r, err := entrypoint.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Lookup(context.Background(), image, entrypoint.Credentials{Namespace: "shop"})
			var e *entrypoint.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *entrypoint.Error", err, err)
			}
			if e.Reason != tc.reason {
				t.Fatalf("reason %s, want %s: %v", e.Reason, tc.reason, err)
			}
			if tc.machine && !strings.Contains(e.Hint, "this machine") {
				t.Errorf("hint %q does not name this machine", e.Hint)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Hint, w) {
					t.Errorf("hint %q does not say %q", e.Hint, w)
				}
			}
			msg := strings.ToLower(err.Error())
			for _, never := range []string{"injector", "imagepullsecret", "service account", "pull secret"} {
				if strings.Contains(msg, never) {
					t.Errorf("the message speaks of %q: %v", never, err)
				}
			}
			t.Logf("%v", err)
		})
	}
}

// closedPort is a loopback host:port where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
