// Command fargate-otel-injector is the admission webhook server of
// fargate-otel: a controller-runtime manager that serves the pod mutation
// (package injector/webhook) over TLS, with health, readiness and Prometheus
// metrics endpoints.
//
// Start-up, in order: flags and the config file (options.go), the logger,
// the API server's version (native sidecars from 1.29), the manager with
// its webhook server and certificate watcher (server.go), then
// setupControllers, where controllers that run next to the webhook are added.
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
