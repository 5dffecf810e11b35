// Command fargate-otel-nodeproxy is the restricted kubelet proxy: the only
// process in a fargate-otel install that holds nodes/proxy. Collector
// sidecars read their own node's /stats/summary, and their own pod's
// container logs, through it with a token whose audience is the proxy's; see
// docs/kubelet-stats.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fargate-otel/fargate-otel/nodeproxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fargate-otel-nodeproxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fargate-otel-nodeproxy", flag.ContinueOnError)
	var o nodeproxy.ServerOptions
	fs.StringVar(&o.Listen, "listen", ":8443", "TLS address the collectors call")
	fs.StringVar(&o.ProbeListen, "probe-listen", ":9090", "plain-HTTP address of /healthz, /readyz and /metrics (empty: off)")
	fs.StringVar(&o.CertFile, "tls-cert-file", "/etc/fargate-otel-nodeproxy/tls/tls.crt", "serving certificate (PEM), re-read when it changes")
	fs.StringVar(&o.KeyFile, "tls-key-file", "/etc/fargate-otel-nodeproxy/tls/tls.key", "serving key (PEM), re-read when it changes")
	fs.StringVar(&o.Audience, "audience", nodeproxy.DefaultAudience, "the only token audience accepted")
	fs.DurationVar(&o.TokenCacheTTL, "token-cache-ttl", 2*time.Minute, "how long an accepted TokenReview is trusted (never past the token's expiry)")
	fs.IntVar(&o.TokenCacheSize, "token-cache-size", 20000, "cached accepted TokenReviews at most (refusals never take their place)")
	fs.DurationVar(&o.RefusalCacheTTL, "refusal-cache-ttl", 10*time.Second, "how long a token the API server refused is refused without asking again")
	fs.IntVar(&o.RefusalCacheSize, "refusal-cache-size", 4096, "cached refused TokenReviews at most (a cache of their own)")
	fs.Float64Var(&o.ReviewQPS, "review-qps", 50, "TokenReviews per second at most, all callers together; over it, a token in no cache gets 429 with Retry-After")
	fs.IntVar(&o.ReviewBurst, "review-burst", 100, "burst of --review-qps")
	fs.Float64Var(&o.SourceReviewQPS, "review-qps-per-source", 1, "TokenReviews per second at most that one remote IP may cause with tokens in no cache")
	fs.IntVar(&o.SourceReviewBurst, "review-burst-per-source", 10, "burst of --review-qps-per-source")
	fs.Float64Var(&o.Rate, "rate", 1, "requests per second allowed to each calling pod")
	fs.IntVar(&o.Burst, "burst", 10, "burst allowed to each calling pod")
	fs.DurationVar(&o.UpstreamTimeout, "upstream-timeout", 30*time.Second, "time limit of one request to the API server (containerLogs follow streams have none)")
	fs.IntVar(&o.MaxFollowStreams, "max-follow-streams", 1000, "containerLogs follow streams open at once at most, all callers together")
	fs.IntVar(&o.ExtraFollowStreamsPerPod, "extra-follow-streams-per-pod", 2, "follow streams a pod may hold beyond one per container (0: none)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for running outside a cluster (default: in-cluster service account)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (all settings are flags)", fs.Args())
	}
	for name, v := range map[string]float64{
		"review-qps": o.ReviewQPS, "review-burst": float64(o.ReviewBurst),
		"review-qps-per-source": o.SourceReviewQPS, "review-burst-per-source": float64(o.SourceReviewBurst),
		"max-follow-streams": float64(o.MaxFollowStreams),
	} {
		if v <= 0 {
			return fmt.Errorf("--%s must be positive, not %g", name, v)
		}
	}
	switch {
	case o.ExtraFollowStreamsPerPod < 0:
		return fmt.Errorf("--extra-follow-streams-per-pod must be 0 or more, not %d", o.ExtraFollowStreamsPerPod)
	case o.ExtraFollowStreamsPerPod == 0:
		o.ExtraFollowStreamsPerPod = -1 // none (0 in nodeproxy.Config takes the default)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var cfg *rest.Config
	var err error
	if *kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", *kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			err = fmt.Errorf("%w (outside a cluster, pass --kubeconfig)", err)
		}
	}
	if err != nil {
		return fmt.Errorf("API server credentials: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return nodeproxy.Run(ctx, cfg, o)
}
