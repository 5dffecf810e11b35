// Command fargate-otel-fleet is the fleet server: the OpAMP server that
// every injected sidecar's agent connects to (docs/fleet-protocol.md), with
// a read-only page and API of the sidecars it knows (docs/fleet.md).
//
// Listeners: the agents' OpAMP over TLS on :4320 (/v1/opamp; the peers'
// read /internal/v1/agents too), the page and API on 127.0.0.1:4321 (reach
// it with kubectl port-forward or `fargate-otel fleet --web`), /healthz,
// /readyz and Prometheus /metrics on :9090. Logs are JSON on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fargate-otel/fargate-otel/fleet/app"
	"github.com/fargate-otel/fargate-otel/internal/version"
)

func main() {
	if err := run(os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "fargate-otel-fleet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fargate-otel-fleet", flag.ContinueOnError)
	o := app.Options{}
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the release namespace (default $POD_NAMESPACE)")
	fs.StringVar(&o.Replica, "replica", os.Getenv("POD_NAME"), "this replica's pod name (default $POD_NAME)")
	fs.StringVar(&o.ServiceAccount, "service-account", "fargate-otel-fleet", "the fleet server's service account: the only one whose replicas may read each other")
	fs.StringVar(&o.GatewayServiceAccount, "gateway-service-account", "fargate-otel-gateway", "the gateway's service account in the release namespace: its agents are gateways, listed and never sent settings; an agent of another account that says it is a gateway is refused (\"-\": no gateway)")
	fs.StringVar(&o.Version, "release-version", version.Version, "the release: sidecars of another collector or injector version are stale")
	fs.StringVar(&o.Listen, "listen", ":4320", "TLS address of the agents' OpAMP and of the peers' reads")
	fs.StringVar(&o.LocalListen, "local-listen", "127.0.0.1:4321", "address of the page and API (loopback: reached with kubectl port-forward)")
	fs.StringVar(&o.ProbeListen, "probe-listen", ":9090", "address of /healthz, /readyz and /metrics (\"-\": off)")
	fs.StringVar(&o.CertFile, "tls-cert-file", "/etc/fargate-otel-fleet/tls/tls.crt", "serving certificate (PEM), re-read when it changes")
	fs.StringVar(&o.KeyFile, "tls-key-file", "/etc/fargate-otel-fleet/tls/tls.key", "serving key (PEM), re-read when it changes")
	fs.StringVar(&o.CAFile, "ca-file", "/etc/fargate-otel-fleet/tls/ca.crt", "CA bundle that verifies the other replicas")
	fs.StringVar(&o.TokenFile, "token-file", "/var/run/secrets/fargate-otel/fleet/token", "this replica's projected token (audience fargate-otel-fleet), presented to the other replicas")
	fs.StringVar(&o.LiveConfigMap, "live-configmap", "fargate-otel-fleet-live", "ConfigMap of the release namespace with the cluster's live settings")
	fs.StringVar(&o.PeerService, "peer-service", "fargate-otel-fleet-peers", "headless Service whose EndpointSlices list the replicas (\"-\": no merge)")
	fs.StringVar(&o.ServerName, "server-name", "", "DNS name in the replicas' certificates (default fargate-otel-fleet.<namespace>.svc)")
	fs.DurationVar(&o.ConfigMapInterval, "configmap-interval", 2*time.Second, "shortest time between two reads of one exporters ConfigMap")
	fs.Float64Var(&o.ConfigMapQPS, "configmap-qps", 5, "exporters ConfigMap reads per second of this replica at most (the interval grows with their number)")
	fs.DurationVar(&o.TokenCacheTTL, "token-cache-ttl", 2*time.Minute, "how long an accepted TokenReview is trusted (never past the token's expiry)")
	fs.IntVar(&o.MaxAgents, "max-agents", 20000, "agents one replica accepts; more are told to retry (bounded memory)")
	fs.Float64Var(&o.ReviewQPS, "review-qps", app.DefaultReviewQPS, "TokenReviews per second a replica sends at most (agents over it are told to retry)")
	fs.IntVar(&o.ReviewBurst, "review-burst", app.DefaultReviewBurst, "TokenReviews a replica sends at once above --review-qps")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for running outside a cluster (default: in-cluster service account)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	o.Log = logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var cfg *rest.Config
	var err error
	if *kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", *kubeconfig)
	} else if cfg, err = rest.InClusterConfig(); err != nil {
		err = fmt.Errorf("%w (outside a cluster, pass --kubeconfig)", err)
	}
	if err != nil {
		return fmt.Errorf("API server credentials: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return app.Run(ctx, cfg, o)
}
