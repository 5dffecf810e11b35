// Command fargate-otel-nodeproxy is the restricted kubelet stats proxy: the
// only process in a fargate-otel install that holds nodes/proxy. Collector
// sidecars read their own node's /stats/summary through it with a token
// whose audience is the proxy's; see the README section "Kubelet stats
// without nodes/proxy in workloads".
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
	fs.IntVar(&o.TokenCacheSize, "token-cache-size", 20000, "cached TokenReviews at most")
	fs.Float64Var(&o.Rate, "rate", 1, "requests per second allowed to each calling pod")
	fs.IntVar(&o.Burst, "burst", 10, "burst allowed to each calling pod")
	fs.DurationVar(&o.UpstreamTimeout, "upstream-timeout", 30*time.Second, "time limit of one request to the API server")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for running outside a cluster (default: in-cluster service account)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
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
