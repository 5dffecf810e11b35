// Package registrytest runs a real OCI registry (go-containerregistry's
// pkg/registry) in-process on loopback for tests: TLS or plain HTTP, basic
// auth, request counting, and a switch that makes it hang. Its Transport
// routes the registry's host name to loopback and refuses every other
// address, so tests never talk to the network.
package registrytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/internal/pki"
)

// Options shape a test registry.
type Options struct {
	// TLS serves HTTPS with a certificate for Hostname that Transport trusts.
	TLS bool
	// Hostname is the name image references use; Transport routes it to
	// loopback. Default 127.0.0.1.
	Hostname string
	// User and Password, when set, are required (HTTP basic auth).
	User, Password string
	// Listen is the loopback address to listen on, default 127.0.0.1:0.
	// Another one (127.0.0.2:0) makes a registry that a process with the
	// default transport reaches by its address and yet does not take for
	// loopback (go-containerregistry tries plain HTTP for 127.0.0.1 only).
	// Hostname then defaults to its host.
	Listen string
}

// Registry is a running test registry.
type Registry struct {
	// Host is host:port as written in image references.
	Host string
	// Transport reaches the registry (and nothing else).
	Transport http.RoundTripper
	// CertPEM is the server certificate (TLS only).
	CertPEM []byte

	server *httptest.Server
	opts   Options

	mu      sync.Mutex
	counts  map[string]int
	hang    chan struct{} // non-nil: requests wait until it is closed
	waiting int
}

// New starts a registry that stops when the test ends.
func New(t testing.TB, opts Options) *Registry {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "127.0.0.1"
		if opts.Listen != "" {
			opts.Hostname, _, _ = net.SplitHostPort(opts.Listen)
		}
	}
	r := &Registry{opts: opts, counts: map[string]int{}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.server = httptest.NewUnstartedServer(r.middleware(reg))
	if opts.Listen != "" {
		l, err := net.Listen("tcp", opts.Listen)
		if err != nil {
			t.Skipf("registrytest: cannot listen on %s: %v", opts.Listen, err)
		}
		_ = r.server.Listener.Close()
		r.server.Listener = l
	}
	r.server.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake noise of the tests' own probes
	if opts.TLS {
		certPEM, keyPEM, err := GenerateCert(opts.Hostname)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		r.CertPEM = certPEM
		r.server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		r.server.StartTLS()
	} else {
		r.server.Start()
	}
	_, port, _ := net.SplitHostPort(r.server.Listener.Addr().String())
	r.Host = net.JoinHostPort(opts.Hostname, port)
	r.Transport = r.NewTransport(true)
	t.Cleanup(func() {
		r.Release()
		r.server.Close()
	})
	return r
}

// NewTransport returns a transport routed to this registry; trustCert says
// whether it trusts the registry's certificate.
func (r *Registry) NewTransport(trustCert bool) http.RoundTripper {
	pool := x509.NewCertPool()
	if trustCert && r.CertPEM != nil {
		pool.AppendCertsFromPEM(r.CertPEM)
	}
	addr := r.server.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, target string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(target)
			if err != nil {
				return nil, err
			}
			if _, lport, _ := net.SplitHostPort(addr); host != r.opts.Hostname || port != lport {
				return nil, fmt.Errorf("registrytest: no route to %s (only %s is reachable in tests)", target, r.Host)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}
}

func (r *Registry) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.counts[kind(req)]++
		hang := r.hang
		if hang != nil {
			r.waiting++
		}
		r.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-req.Context().Done():
			}
			r.mu.Lock()
			r.waiting--
			r.mu.Unlock()
		}
		if r.opts.User != "" {
			user, pass, ok := req.BasicAuth()
			if !ok || user != r.opts.User || pass != r.opts.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

// kind names a request for counting: ping, manifest-head, manifest-get, blob-get, other.
func kind(req *http.Request) string {
	p := req.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return "ping"
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodHead:
		return "manifest-head"
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodGet:
		return "manifest-get"
	case strings.Contains(p, "/blobs/") && req.Method == http.MethodGet:
		return "blob-get"
	default:
		return "other"
	}
}

// Counts returns the requests seen since the last ResetCounts, by kind.
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// ManifestAndBlobRequests counts the requests that read image data (not pings).
func (r *Registry) ManifestAndBlobRequests() int {
	c := r.Counts()
	return c["manifest-head"] + c["manifest-get"] + c["blob-get"]
}

// ResetCounts forgets the requests seen so far.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]int{}
}

// Hang makes every request wait until Release (or until its client gives up).
func (r *Registry) Hang() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hang == nil {
		r.hang = make(chan struct{})
	}
}

// Release lets hanging requests go on and stops hanging.
func (r *Registry) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hang != nil {
		close(r.hang)
		r.hang = nil
	}
}

// Waiting is the number of requests hanging now.
func (r *Registry) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting
}

// Image is what the tests put into an image config.
type Image struct {
	Entrypoint []string
	Cmd        []string
	// Platform of this image in an index, e.g. "linux/arm64".
	Platform string
}

// Push writes a single-platform image to repoTag ("app:v1") and returns the
// full reference and the manifest digest.
func (r *Registry) Push(t testing.TB, repoTag string, img Image) (string, v1.Hash) {
	t.Helper()
	i := r.build(t, img)
	ref := r.ref(t, repoTag)
	if err := remote.Write(ref, i, r.pushOptions()...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := i.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.ResetCounts()
	return ref.String(), d
}

// PushIndex writes a multi-platform index to repoTag and returns the
// reference and the digest of each platform's manifest, in order.
func (r *Registry) PushIndex(t testing.TB, repoTag string, imgs ...Image) (string, []v1.Hash) {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	var digests []v1.Hash
	for _, img := range imgs {
		i := r.build(t, img)
		p, err := v1.ParsePlatform(img.Platform)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: i, Descriptor: v1.Descriptor{Platform: p}})
		d, err := i.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	ref := r.ref(t, repoTag)
	if err := remote.WriteIndex(ref, idx, r.pushOptions()...); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	r.ResetCounts()
	return ref.String(), digests
}

func (r *Registry) build(t testing.TB, img Image) v1.Image {
	t.Helper()
	base, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint = img.Entrypoint
	cf.Config.Cmd = img.Cmd
	cf.OS, cf.Architecture = "linux", "amd64"
	if img.Platform != "" {
		p, err := v1.ParsePlatform(img.Platform)
		if err != nil {
			t.Fatal(err)
		}
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	}
	out, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *Registry) ref(t testing.TB, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (r *Registry) pushOptions() []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.Transport)}
	if r.opts.User != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.opts.User, Password: r.opts.Password}))
	}
	return opts
}

// PullSecret is a kubernetes.io/dockerconfigjson Secret for this registry.
func (r *Registry) PullSecret(namespace, name, user, password string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{
		r.Host: map[string]string{"username": user, "password": password, "auth": auth},
	}})
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}
}

// GenerateCert returns a self-signed certificate (PEM) and its key for hosts
// (DNS names or IP addresses), valid for a day. It is its own CA, so that a
// client trusts the server by putting certPEM in its roots.
func GenerateCert(hosts ...string) (certPEM, keyPEM []byte, err error) {
	dnsNames, ips := pki.SplitHosts(hosts)
	now := time.Now()
	kp, err := pki.NewCA(pki.Spec{
		CommonName:   hosts[0],
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	})
	if err != nil {
		return nil, nil, err
	}
	return kp.CertPEM, kp.KeyPEM, nil
}
