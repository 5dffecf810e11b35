//go:build !windows

package main

import (
	"context"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/settingsprovider"
)

// run replaces ocb's main_others.go (`make collector-generate` removes the
// regenerated one): the command is otelcol's, with this distribution's
// components, and in a sidecar (FARGATE_OTEL_SIDECAR=true) the collector
// itself never exits on a failure, only on SIGTERM (see sidecar.go). A
// running collector's shutdown has a deadline (hardstop.go). Subcommands
// such as validate keep their exit status.
func run(set otelcol.CollectorSettings) error {
	set.Factories = withDistribution(set.Factories)
	withSettingsProvider(&set, settingsprovider.Options{})
	sidecar, _ := strconv.ParseBool(os.Getenv(sidecarEnv))
	// In a sidecar, SIGTERM is the supervisor's alone: it cancels the
	// collector's context, and the collector then shuts down with a fresh
	// one. Were the collector to catch SIGTERM too, whichever handler ran
	// first would decide, and in half the stops every component's Shutdown
	// would get a context already cancelled by the supervisor.
	set.DisableGracefulShutdown = sidecar
	cmd := otelcol.NewCommand(set)
	log := jsonLogger(os.Stderr)
	timeout, warning := shutdownTimeout(os.Getenv(shutdownTimeoutEnv))
	runCollector := cmd.RunE
	if !sidecar {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if warning != "" {
				log.Warn(warning)
			}
			defer newHardStop(log, timeout, hardStopCode).arm()()
			return runCollector(c, args)
		}
		return cmd.Execute()
	}

	s := newSupervisor(os.Stderr, os.Getenv(healthEndpointEnv))
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if warning != "" {
			log.Warn(warning)
		}
		defer newHardStop(log, timeout, hardStopSidecarCode).arm()()
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

// withSettingsProvider adds the `fargate` config provider: a pod's sidecar
// runs with --config=fargate:env:FARGATE_OTEL_SETTINGS.
func withSettingsProvider(set *otelcol.CollectorSettings, opts settingsprovider.Options) {
	f := settingsprovider.NewFactory(opts)
	rs := &set.ConfigProviderSettings.ResolverSettings
	rs.ProviderFactories = append(rs.ProviderFactories, f)
	if set.ProviderModules == nil {
		set.ProviderModules = map[string]string{}
	}
	set.ProviderModules[f.Create(confmap.ProviderSettings{}).Scheme()] = "github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/settingsprovider (this distribution)"
}
