package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/fargate-otel/fargate-otel/fleet/app"
	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/fleettest"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/server"
	"github.com/fargate-otel/fargate-otel/fleet/sources"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

// Env of the server process.
const (
	envRole   = "FLEET_BENCH_ROLE"
	envListen = "FLEET_BENCH_LISTEN"
	envCert   = "FLEET_BENCH_CERT"
	envKey    = "FLEET_BENCH_KEY"
)

// staticLive is the cluster's live settings, set from stdin.
type staticLive struct {
	mu   sync.Mutex
	live desired.Live
}

func (s *staticLive) Get() (desired.Live, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live, ""
}

type noNamespaces struct{}

func (noNamespaces) Want(sources.Key, string)          {}
func (noNamespaces) Release(sources.Key, string)       {}
func (noNamespaces) Get(sources.Key) desired.Namespace { return desired.Namespace{} }

// serve is the server process: one replica's OpAMP side (fleet/server and
// fleet/registry, as fargate-otel-fleet runs them) on TLS. Each stdin line
// "logLevel <level>" changes the live settings.
func serve() error {
	cert, err := tls.LoadX509KeyPair(os.Getenv(envCert), os.Getenv(envKey))
	if err != nil {
		return err
	}
	// The fleet server's own review bound, so that a restart's figure
	// includes it. Every simulated agent comes from 127.0.0.1, where in a
	// cluster each pod has its own address: the per-source bound (1/s a
	// source) is lifted, or it would measure one address's limit.
	auth, err := callerauth.New(fleettest.Review, callerauth.Options{Audience: server.Audience,
		ReviewQPS: app.DefaultReviewQPS, ReviewBurst: app.DefaultReviewBurst, SourceQPS: 1e6, SourceBurst: 1e6})
	if err != nil {
		return err
	}
	live := &staticLive{live: desired.Live{LogLevel: "info"}}
	reg := registry.New(registry.Options{Replica: "bench", Version: "0.1.0"})
	srv := server.New(server.Options{Auth: auth, Live: live, Namespaces: noNamespaces{}, Registry: reg, Log: logr.Discard()})
	h, connCtx, err := srv.Attach()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/opamp", h)
	l, err := net.Listen("tcp", os.Getenv(envListen))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ConnContext: connCtx, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}}
	ctx := context.Background()
	go srv.Run(ctx)
	go func() { _ = hs.Serve(tls.NewListener(l, hs.TLSConfig)) }()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "logLevel" {
			live.mu.Lock()
			live.live.LogLevel = f[1]
			live.mu.Unlock()
			srv.SourcesChanged()
		}
	}
	return nil
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
