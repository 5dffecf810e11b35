package nodeproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/nodeproxy/certfile"
	"github.com/fargate-otel/fargate-otel/nodeproxy/podindex"
)

// ServerOptions configure the fargate-otel-nodeproxy process.
type ServerOptions struct {
	// Listen is the TLS address of the proxy (":8443").
	Listen string
	// ProbeListen is the plain-HTTP address of /healthz, /readyz and
	// /metrics (":9090"); empty disables it.
	ProbeListen string
	// CertFile and KeyFile are the serving key pair, re-read when they change.
	CertFile, KeyFile string
	// Audience is the token audience accepted (DefaultAudience).
	Audience string
	// TokenCacheTTL, TokenCacheSize, RefusalCacheTTL, RefusalCacheSize,
	// ReviewQPS, ReviewBurst, SourceReviewQPS, SourceReviewBurst: see
	// callerauth.Options (TTL, CacheSize, NegativeTTL, RefusalCacheSize,
	// ReviewQPS, ReviewBurst, SourceQPS, SourceBurst).
	TokenCacheTTL     time.Duration
	TokenCacheSize    int
	RefusalCacheTTL   time.Duration
	RefusalCacheSize  int
	ReviewQPS         float64
	ReviewBurst       int
	SourceReviewQPS   float64
	SourceReviewBurst int
	// Rate and Burst limit each calling pod.
	Rate  float64
	Burst int
	// UpstreamTimeout bounds one forwarded request, except a
	// containerLogs follow stream.
	UpstreamTimeout time.Duration
	// MaxFollowStreams, ExtraFollowStreamsPerPod: see Config.
	MaxFollowStreams         int
	ExtraFollowStreamsPerPod int
	Logger                   *slog.Logger
}

// Run serves the proxy with the credentials in restCfg until ctx ends.
func Run(ctx context.Context, restCfg *rest.Config, o ServerOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	certs, err := certfile.New(o.CertFile, o.KeyFile, 0)
	if err != nil {
		return fmt.Errorf("serving certificate: %w (mount the chart's fargate-otel-nodeproxy-tls Secret)", err)
	}

	apiCfg := rest.CopyConfig(restCfg)
	apiCfg.UserAgent = "fargate-otel-nodeproxy"
	ao := callerauth.Options{
		Audience:         o.Audience,
		TTL:              o.TokenCacheTTL,
		CacheSize:        o.TokenCacheSize,
		NegativeTTL:      o.RefusalCacheTTL,
		RefusalCacheSize: o.RefusalCacheSize,
		ReviewQPS:        o.ReviewQPS,
		ReviewBurst:      o.ReviewBurst,
		SourceQPS:        o.SourceReviewQPS,
		SourceBurst:      o.SourceReviewBurst,
	}.WithDefaults()
	// TokenReviews (bounded by the authenticator's own limit) and pod GETs
	// (on pod index misses only) share the client's limit: leave the pod
	// GETs room above the review limit, so that a flood of unknown tokens,
	// even at its limit, never starves them.
	apiCfg.QPS, apiCfg.Burst = float32(ao.ReviewQPS)+25, ao.ReviewBurst+50
	client, err := kubernetes.NewForConfig(apiCfg)
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	upstream, err := url.Parse(restCfg.Host)
	if err != nil || upstream.Host == "" {
		return fmt.Errorf("API server address %q: not a URL", restCfg.Host)
	}
	if upstream.Scheme == "" {
		upstream.Scheme = "https"
	}
	// Forwarding uses HTTP/1.1 keep-alive connections (client-go keeps up
	// to 25 idle): for many small concurrent answers Go's HTTP/1.1 costs
	// less CPU than multiplexing them over one HTTP/2 connection.
	fwdCfg := rest.CopyConfig(apiCfg)
	fwdCfg.NextProtos = []string{"http/1.1"}
	transport, err := rest.TransportFor(fwdCfg)
	if err != nil {
		return fmt.Errorf("API transport: %w", err)
	}

	auth, err := callerauth.New(callerauth.ClientReviewer(client.AuthenticationV1().TokenReviews()), ao)
	if err != nil {
		return err
	}
	pods, err := podindex.New(client)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return err
	}
	registerAuthMetrics(reg, auth)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fargate_otel_nodeproxy_certificate_expiry_timestamp_seconds",
		Help: "When the serving certificate expires.",
	}, func() float64 { return float64(certs.NotAfter().Unix()) }))

	handler, err := NewHandler(Config{
		Upstream:                 upstream,
		Transport:                transport,
		Auth:                     auth,
		Pods:                     pods,
		Rate:                     rate.Limit(o.Rate),
		Burst:                    o.Burst,
		UpstreamTimeout:          o.UpstreamTimeout,
		MaxFollowStreams:         o.MaxFollowStreams,
		ExtraFollowStreamsPerPod: o.ExtraFollowStreamsPerPod,
		Logger:                   log,
		Metrics:                  metrics,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pods.Start(ctx)

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	srv := NewTLSServer(handler, certs.GetCertificate, log)
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()

	var probe *http.Server
	if o.ProbeListen != "" {
		pln, err := net.Listen("tcp", o.ProbeListen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("listen on %s: %w", o.ProbeListen, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !pods.HasSynced() {
				http.Error(w, "pod index not synced yet", http.StatusServiceUnavailable)
				return
			}
			if err := certs.Err(); err != nil {
				// Still serving the previous certificate; say so but stay ready.
				_, _ = fmt.Fprintf(w, "ok (serving the previous certificate: %v)\n", err)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		probe = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- probe.Serve(pln) }()
	}
	log.Info("serving", "listen", ln.Addr().String(), "probes", o.ProbeListen, "audience", o.Audience, "apiserver", upstream.Host,
		"reviewQPS", ao.ReviewQPS, "reviewBurst", ao.ReviewBurst, "sourceReviewQPS", ao.SourceQPS, "sourceReviewBurst", ao.SourceBurst,
		"upstreamTimeout", handler.cfg.UpstreamTimeout.String(), "maxFollowStreams", handler.cfg.MaxFollowStreams)

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("shutting down")
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	err = srv.Shutdown(shutdownCtx)
	if probe != nil {
		_ = probe.Shutdown(shutdownCtx)
	}
	return err
}

// registerAuthMetrics exposes the authenticator's counts.
func registerAuthMetrics(reg prometheus.Registerer, auth *callerauth.Authenticator) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fargate_otel_nodeproxy_cached_token_reviews",
		Help: "Accepted token reviews held in the cache.",
	}, func() float64 { return float64(auth.Stats().CachedAccepted) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fargate_otel_nodeproxy_cached_token_refusals",
		Help: "Refused token reviews held in their own cache.",
	}, func() float64 { return float64(auth.Stats().CachedRefused) }))
	for _, result := range []string{"accepted", "refused", "error"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fargate_otel_nodeproxy_token_reviews_sent_total",
			Help:        "TokenReviews sent to the API server, by outcome (error: no answer).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			st := auth.Stats()
			switch result {
			case "accepted":
				return float64(st.ReviewsAccepted)
			case "refused":
				return float64(st.ReviewsRefused)
			}
			return float64(st.ReviewsFailed)
		}))
	}
	for _, reason := range []string{"malformed", "rate_limited_source", "rate_limited_global"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fargate_otel_nodeproxy_tokens_unreviewed_total",
			Help:        "Tokens in no cache refused without a TokenReview: by their shape, or over the per-source or global review limit.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 {
			st := auth.Stats()
			switch reason {
			case "malformed":
				return float64(st.Malformed)
			case "rate_limited_source":
				return float64(st.LimitedSource)
			}
			return float64(st.LimitedGlobal)
		}))
	}
}

// NewTLSServer is the proxy's HTTP server: TLS 1.2 or later with the
// certificate from getCert, and limits that keep slow or greedy clients from
// holding resources.
func NewTLSServer(h http.Handler, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: getCert,
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		Protocols:         protocols(),
	}
}

// protocols: HTTP/1.1 only. Each collector holds one keep-alive connection
// and sends one request at a time, so HTTP/2's multiplexing buys nothing,
// and Go's HTTP/1.1 server costs less CPU per request.
func protocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	return &p
}
