//go:build !windows

package main

import (
	"os"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/otelcol"
)

// run replaces ocb's main_others.go (`make gateway-generate` removes the
// regenerated one). Without the fleet env (FARGATE_OTEL_FLEET_ENDPOINT
// unset) the gateway is otelcol's command as ocb generates it. With it, the
// fleet's OpAMP agent runs beside the collector in this process (fleet.go):
// it reports the replica's identity, health, effective config (redacted)
// and export figures, and never holds the collector back. The gateway's
// config is the chart's: the agent does not accept remote config.
func run(set otelcol.CollectorSettings) error {
	fl := newFleet(jsonLogger(os.Stderr), set.BuildInfo, os.Args[1:])
	if fl == nil {
		return runInteractive(set)
	}
	fl.prepare(&set)
	cmd := otelcol.NewCommand(set)
	// Only the collector's own run has an agent: `validate`, `components`
	// and the other subcommands run as they are.
	runCollector := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		stop := fl.start()
		defer stop()
		err := runCollector(c, args)
		fl.ended(err)
		return err
	}
	return cmd.Execute()
}
