// Package app wires one fleet server replica: the sources (Kubernetes API),
// the registry, the OpAMP server, the peers and the three listeners. The
// binary cmd/fargate-otel-fleet parses flags into Options and calls Run;
// tests run the very same thing in-process.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/httpapi"
	"github.com/fargate-otel/fargate-otel/fleet/peers"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/server"
	"github.com/fargate-otel/fargate-otel/fleet/sources"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/nodeproxy/certfile"
)

// Options of one replica. Zero values take the defaults in brackets.
type Options struct {
	// Namespace is the release namespace; Replica this pod's name;
	// ServiceAccount the fleet server's own (peers must present it).
	Namespace, Replica, ServiceAccount string
	// GatewayServiceAccount is the gateway's service account in Namespace
	// [fargate-otel-gateway]: its agents are gateways, listed and never
	// sent settings ("-": no agent is a gateway).
	GatewayServiceAccount string
	// Version is the release: sidecars of another one are stale.
	Version string

	// Listen is the agents' TLS address [:4320], also serving the peers;
	// LocalListen the page and API [127.0.0.1:4321]; ProbeListen
	// /healthz, /readyz, /metrics [:9090] ("-" turns one off).
	Listen, LocalListen, ProbeListen string
	// CertFile and KeyFile are the serving pair (re-read when they change).
	CertFile, KeyFile string
	// TLSCertificate, when set, replaces CertFile and KeyFile (tests).
	TLSCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// LiveConfigMap is the live settings ConfigMap of Namespace.
	LiveConfigMap string
	// ConfigMapInterval, ConfigMapQPS pace the reads of namespaces'
	// exporters ConfigMaps [2s, 5/s].
	ConfigMapInterval time.Duration
	ConfigMapQPS      float64

	// Peers: the headless Service listing the replicas [fargate-otel-fleet-peers],
	// the DNS name in the certificates [fargate-otel-fleet.<ns>.svc], the CA
	// that verifies them and this replica's token (audience
	// fargate-otel-fleet). PeerService "-" turns the merge off.
	PeerService, ServerName, CAFile, TokenFile string

	// TokenCacheTTL bounds how long a token review is trusted [2m].
	TokenCacheTTL time.Duration
	// MaxAgents a replica accepts [20000].
	MaxAgents int
	// ReviewQPS and ReviewBurst bound the TokenReviews a replica sends
	// [DefaultReviewQPS, DefaultReviewBurst]: every agent of a restarted
	// replica reconnects within seconds, and each new connection needs one.
	ReviewQPS   float64
	ReviewBurst int

	// Reviewer, when set, replaces the TokenReview client (the bench).
	Reviewer callerauth.Reviewer

	Log logr.Logger
	// Ready is called once every listener is up (tests).
	Ready func(Addrs)
}

// Addrs are where a running replica listens.
type Addrs struct{ OpAMP, Local, Probes string }

// The fleet's TokenReview bound: 5,000 agents of a restarted replica are
// reviewed in 25 s. The node proxy's default (50/s) suits its callers,
// which are reviewed one at a time as pods start; a fleet replica's come
// all at once.
const (
	DefaultReviewQPS   = 200
	DefaultReviewBurst = 400
)

func (o *Options) defaults() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	if o.Namespace == "" || o.Replica == "" {
		return errors.New("the release namespace and the replica's pod name are required (POD_NAMESPACE, POD_NAME)")
	}
	def(&o.ServiceAccount, "fargate-otel-fleet")
	def(&o.GatewayServiceAccount, "fargate-otel-gateway")
	def(&o.Listen, fmt.Sprintf(":%d", api.OpAMPPort))
	def(&o.LocalListen, fmt.Sprintf("127.0.0.1:%d", api.LocalPort))
	def(&o.ProbeListen, fmt.Sprintf(":%d", api.MetricsPort))
	def(&o.PeerService, "fargate-otel-fleet-peers")
	def(&o.ServerName, "fargate-otel-fleet."+o.Namespace+".svc")
	if o.TLSCertificate == nil && (o.CertFile == "" || o.KeyFile == "") {
		return errors.New("a serving certificate is required: --tls-cert-file and --tls-key-file")
	}
	if o.ReviewQPS <= 0 {
		o.ReviewQPS = DefaultReviewQPS
	}
	if o.ReviewBurst <= 0 {
		o.ReviewBurst = DefaultReviewBurst
	}
	return nil
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	log := o.Log
	// TokenReviews come in bursts (every agent reconnects after a restart
	// of a replica): well above client-go's default 5/s, with room for the
	// ConfigMap reads and peers beside the reviews.
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = float32(o.ReviewQPS)+20, o.ReviewBurst+40
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	review := o.Reviewer
	if review == nil {
		review = callerauth.ClientReviewer(kube.AuthenticationV1().TokenReviews())
	}
	auth, err := callerauth.New(review, callerauth.Options{Audience: server.Audience, TTL: o.TokenCacheTTL,
		ReviewQPS: o.ReviewQPS, ReviewBurst: o.ReviewBurst})
	if err != nil {
		return err
	}

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg := registry.New(registry.Options{Replica: o.Replica, Version: o.Version})
	promReg.MustRegister(registryCollector{reg})

	events := sources.NewEvents(kube, o.Replica, log.WithName("events"))
	var srv *server.Server
	changed := func() {
		if srv != nil {
			srv.SourcesChanged()
		}
	}
	live := sources.NewLive(kube, o.Namespace, o.LiveConfigMap, events, log.WithName("live"), changed)
	nss := sources.NewNamespaces(kube, sources.NamespaceOptions{Interval: o.ConfigMapInterval, MaxQPS: o.ConfigMapQPS}, events, log.WithName("configmaps"), func(sources.Key) { changed() })
	srv = server.New(server.Options{Auth: auth, Live: live, Namespaces: nss, Registry: reg, Metrics: server.NewMetrics(promReg),
		Log: log.WithName("opamp"), MaxAgents: o.MaxAgents, GatewayNamespace: o.Namespace, GatewayServiceAccount: gatewaySA(o.GatewayServiceAccount)})
	opampHandler, connCtx, err := srv.Attach()
	if err != nil {
		return err
	}

	var peerSrc httpapi.PeerSource
	if o.PeerService != "-" {
		peerSrc = peers.New(kube, peers.Options{Namespace: o.Namespace, Service: o.PeerService, Self: o.Replica,
			ServerName: o.ServerName, CAFile: o.CAFile, TokenFile: o.TokenFile})
	}
	hopts := httpapi.Options{Replica: o.Replica, Version: o.Version, Registry: reg, Peers: peerSrc,
		Auth: auth, Namespace: o.Namespace, ServiceAccount: o.ServiceAccount, Log: log.WithName("http")}

	getCert := o.TLSCertificate
	var certs *certfile.Reloader
	if getCert == nil {
		if certs, err = certfile.New(o.CertFile, o.KeyFile, 0); err != nil {
			return fmt.Errorf("serving certificate: %w", err)
		}
		getCert = certs.GetCertificate
	}
	ready := func() error {
		if certs != nil {
			if err := certs.Err(); err != nil {
				return fmt.Errorf("serving certificate: %w", err)
			}
		}
		if !live.Synced() {
			return errors.New("the live settings ConfigMap was not read yet")
		}
		return nil
	}

	tlsMux := http.NewServeMux()
	tlsMux.Handle("/v1/opamp", opampHandler)
	tlsMux.Handle(api.PathPeerAgents, httpapi.Peer(hopts))
	opampSrv := &http.Server{Handler: tlsMux, ConnContext: connCtx, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}}
	localSrv := &http.Server{Handler: httpapi.Local(hopts), ReadHeaderTimeout: 10 * time.Second}
	probeSrv := &http.Server{Handler: httpapi.Probes(promReg, ready), ReadHeaderTimeout: 10 * time.Second}

	var addrs Addrs
	type served struct {
		srv  *http.Server
		addr string
		dst  *string
		tls  bool
	}
	var listeners []net.Listener
	var servers []served
	for _, s := range []served{{opampSrv, o.Listen, &addrs.OpAMP, true}, {localSrv, o.LocalListen, &addrs.Local, false}, {probeSrv, o.ProbeListen, &addrs.Probes, false}} {
		if s.addr == "-" {
			continue
		}
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range listeners {
				_ = l.Close()
			}
			return fmt.Errorf("listen on %s: %w", s.addr, err)
		}
		*s.dst = l.Addr().String()
		if s.tls {
			l = tls.NewListener(l, s.srv.TLSConfig)
		}
		listeners = append(listeners, l)
		servers = append(servers, s)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(servers)+1)
	for i, s := range servers {
		go func() {
			if err := s.srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", s.addr, err)
			}
		}()
	}
	go live.Run(ctx)
	go nss.Run(ctx)
	go srv.Run(ctx)
	log.Info("fleet server started", "replica", o.Replica, "opamp", addrs.OpAMP, "local", addrs.Local, "probes", addrs.Probes, "version", o.Version)
	if o.Ready != nil {
		o.Ready(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Agents reconnect to another replica at once; the page's last reads
	// finish.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	for _, s := range servers {
		_ = s.srv.Shutdown(sctx)
	}
	return runErr
}

// registryCollector exposes the registry's size.
type registryCollector struct{ reg *registry.Registry }

var (
	knownDesc   = prometheus.NewDesc("fargate_otel_fleet_agents_known", "Agents this replica knows, connected or disconnected within the last minutes.", nil, nil)
	configsDesc = prometheus.NewDesc("fargate_otel_fleet_effective_configs", "Distinct effective configs kept (shared by the agents that run them).", nil, nil)
)

func (c registryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- knownDesc; ch <- configsDesc }

func (c registryCollector) Collect(ch chan<- prometheus.Metric) {
	known, _ := c.reg.Len()
	ch <- prometheus.MustNewConstMetric(knownDesc, prometheus.GaugeValue, float64(known))
	ch <- prometheus.MustNewConstMetric(configsDesc, prometheus.GaugeValue, float64(c.reg.DistinctConfigs()))
}

// gatewaySA is the server's GatewayServiceAccount: "-" is none.
func gatewaySA(sa string) string {
	if sa == "-" {
		return ""
	}
	return sa
}
