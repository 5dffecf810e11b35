//go:build !windows

package main

import (
	"context"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/otelcol"
)

// run replaces ocb's main_others.go (`make collector-generate` removes the
// regenerated one): the command is otelcol's, with this distribution's
// components, and in a sidecar (FARGATE_OTEL_SIDECAR=true) the collector
// itself never exits on a failure, only on SIGTERM (see sidecar.go).
// Subcommands such as validate keep their exit status.
func run(set otelcol.CollectorSettings) error {
	set.Factories = withDistribution(set.Factories)
	cmd := otelcol.NewCommand(set)
	if on, _ := strconv.ParseBool(os.Getenv(sidecarEnv)); !on {
		return cmd.Execute()
	}

	s := newSupervisor(os.Stderr, os.Getenv(healthEndpointEnv))
	runCollector := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		s.run(func(ctx context.Context) error {
			c.SetContext(ctx)
			return runCollector(c, args)
		})
		return nil
	}
	executed, err := cmd.ExecuteC()
	if err != nil && executed == cmd {
		// The collector's own flags were refused: no retry can help, but
		// exiting would still hold the app back.
		s.run(func(context.Context) error { return err })
		return nil
	}
	return err
}
