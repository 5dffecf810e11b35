// Command fargate-otel-injector is the admission webhook server of
// fargate-otel: a controller-runtime manager that serves the pod mutation
// (package injector/webhook) over TLS, with health, readiness and Prometheus
// metrics endpoints.
//
// Start-up, in order: flags and the config file (options.go), the logger,
// the API server's version (native sidecars from 1.29), the manager with
// its webhook server and certificate watcher (server.go), then
// setupControllers, where controllers that run next to the webhook are added.
//
// Endpoints: the webhook at https://:9443/mutate-v1-pod (certificate and key
// from --cert-dir, reloaded when they change; TLS 1.2+, HTTP/1.1 unless
// --enable-http2), /healthz and /readyz on :8081 (ready once a certificate
// is loaded and the server completes a TLS handshake), Prometheus /metrics
// on :8080: controller-runtime's, and fargate_otel_injector_
// injections_total, skips_total{reason}, fail_open_total{cause},
// admission_duration_seconds, image_resolve_duration_seconds,
// registry_lookup_duration_seconds{outcome},
// image_cache_lookups_total{cache,result} and
// exporters_configmap_reads_total{result}. Logs are JSON on stderr.
//
// RBAC it needs: get secrets and serviceaccounts (pull secrets, on look-up
// cache misses only), get configmaps (exporters ConfigMaps named by pods),
// create events (events.k8s.io), and what setupControllers' controllers need.
// The webhook configuration should use failurePolicy Ignore, sideEffects
// NoneOnDryRun (it records Events, never on dry runs), reinvocationPolicy
// IfNeeded and a timeout of 10s (--image-lookup-budget stays under it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
)

func main() {
	ctx := ctrl.SetupSignalHandler() // SIGTERM/SIGINT: graceful shutdown
	if err := run(ctx, os.Args[1:], os.Stderr); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "fargate-otel-injector: %v\n", err)
		os.Exit(1)
	}
}

// run starts the server and blocks until ctx is done or it fails.
func run(ctx context.Context, args []string, stderr *os.File) error {
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, opts.logFormat, opts.logLevel)
	ctrl.SetLogger(log)
	return serve(ctx, opts, log)
}
