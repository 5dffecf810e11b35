package scenario

import (
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
)

// UnreadableRepository is a repository whose registry is down: the test
// registry (ServeRegistryT) answers 500 for it, so the injector cannot read
// the ENTRYPOINT of its images. Its images are imported into the node's
// containerd, as a mirror or an earlier pull would have them, so that the
// pods still start (pull policy IfNotPresent).
const UnreadableRepository = "fargate-otel-demo/unreadable-app"

// TestRegistry is the registry of ServeRegistryT.
type TestRegistry struct {
	failed atomic.Int64
}

// Failed is how many requests it answered with 500.
func (r *TestRegistry) Failed() int64 { return r.failed.Load() }

// ServeRegistryT serves an in-memory image registry (go-containerregistry's
// pkg/registry) at cluster.RegistryHost, the node's address over plain
// HTTP, for the rest of the test, as cluster.ServeRegistryT does; but every
// request about one of the failing repositories (their manifests, blobs and
// tags) gets 500 Internal Server Error, as from a registry that is down for
// them.
func ServeRegistryT(t testing.TB, failing ...string) *TestRegistry {
	t.Helper()
	l, err := net.Listen("tcp", cluster.RegistryHost)
	if err != nil {
		t.Fatal(err)
	}
	r := &TestRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for _, repo := range failing {
			if strings.HasPrefix(req.URL.Path, "/v2/"+repo+"/") {
				r.failed.Add(1)
				http.Error(w, "the registry is down for "+repo, http.StatusInternalServerError)
				return
			}
		}
		h.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}
