// Command registry is the image registry of `make demo`'s local cluster: the
// OCI distribution API of go-containerregistry's pkg/registry over plain
// HTTP. It runs as a hostNetwork pod on the node's address (cluster.RegistryHost),
// where containerd pulls from over plain HTTP and the injector reads
// entrypoints (an insecure registry in the chart's values), so that the demo
// app's image is looked up and pulled as a user's would be.
//
// Manifests live in memory and blobs under -dir (an emptyDir): a restarted
// registry is empty, but the kubelet keeps what it already pulled.
//
//	registry [-listen :5000] [-dir /tmp/registry]
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	listen := flag.String("listen", ":5000", "listen address")
	dir := flag.String("dir", "/tmp/registry", "blob directory (created if missing)")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		slog.Error("registry", "err", err)
		os.Exit(1)
	}
	logger := log.New(io.Discard, "", 0)
	if *verbose {
		logger = log.New(os.Stderr, "", log.LstdFlags)
	}
	mux := http.NewServeMux()
	mux.Handle("/", registry.New(registry.Logger(logger), registry.WithBlobHandler(registry.NewDiskBlobHandler(*dir))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	slog.Info("registry serving", "listen", *listen, "dir", *dir)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		slog.Error("registry", "err", err)
		os.Exit(1)
	}
}
