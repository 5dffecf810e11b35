//go:build !windows

package main

import (
	"context"
	"os"
	"slices"
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
	sidecar, _ := strconv.ParseBool(os.Getenv(sidecarEnv))
	log := jsonLogger(os.Stderr)
	// In a sidecar with a fleet endpoint, the supervisor is also the fleet's
	// agent (fleet.go): live settings are laid over the pod's own.
	var fl fleet
	if sidecar {
		fl = newFleet(log, set.BuildInfo, os.Args[1:])
	}
	opts := settingsprovider.Options{}
	if fl != nil {
		opts = fl.prepare(&set)
	}
	withSettingsProvider(&set, opts)
	if fl != nil {
		fl.collectorSettings(set)
	}
	// In a sidecar, SIGTERM is the supervisor's alone: it cancels the
	// collector's context, and the collector then shuts down with a fresh
	// one. Were the collector to catch SIGTERM too, whichever handler ran
	// first would decide, and in half the stops every component's Shutdown
	// would get a context already cancelled by the supervisor.
	set.DisableGracefulShutdown = sidecar
	cmd := otelcol.NewCommand(set)
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
		if fl != nil {
			s.hooks = fl.hooks()
			stopAgent := fl.start()
			defer stopAgent()
		}
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

// fleet is a sidecar's fleet agent with its live config (fleet.go), or nil.
type fleet interface {
	// prepare adds the agent's components to set, and returns the config
	// provider's options.
	prepare(set *otelcol.CollectorSettings) settingsprovider.Options
	// collectorSettings gives the settings the collector runs with (the
	// live config validates candidates with them).
	collectorSettings(set otelcol.CollectorSettings)
	// hooks follow the supervisor's runs.
	hooks() runHooks
	// start connects the agent; the returned func disconnects it.
	start() (stop func())
}

// withSettingsProvider adds the `fargate` config provider: a pod's sidecar
// runs with --config=fargate:env:FARGATE_OTEL_SETTINGS.
func withSettingsProvider(set *otelcol.CollectorSettings, opts settingsprovider.Options) {
	f := settingsprovider.NewFactory(opts)
	rs := &set.ConfigProviderSettings.ResolverSettings
	rs.ProviderFactories = append(slices.Clone(rs.ProviderFactories), f)
	if set.ProviderModules == nil {
		set.ProviderModules = map[string]string{}
	}
	set.ProviderModules[f.Create(confmap.ProviderSettings{}).Scheme()] = "github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/settingsprovider (this distribution)"
}
