//go:build !windows && !noagent

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/settingsprovider"
	"github.com/fargate-otel/fargate-otel/fleetagent/agent"
	"github.com/fargate-otel/fargate-otel/fleetagent/figures"
	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// The fleet agent of a sidecar (FARGATE_OTEL_FLEET_ENDPOINT set): the
// supervisor connects to the fleet server (fleetagent/agent) and applies its
// live settings (live.go). The agent is left out of a build with the tag
// noagent, the reference make bench-collector measures it against.

var fileLogType = component.MustNewType("file_log")

// agentStopWithin bounds the agent's goodbye at the pod's end.
const agentStopWithin = 2 * time.Second

type fleetAgent struct {
	log         *slog.Logger
	cfg         agent.Config
	build       component.BuildInfo
	settingsURI string
	live        *live
	tracker     *fleetstatus.Tracker
	figures     *figures.Figures
	set         otelcol.CollectorSettings
	agent       atomic.Pointer[agent.Agent]
}

// newFleet returns the sidecar's fleet agent, or nil when it has none.
// args are the command line's (the --config flags).
func newFleet(log *slog.Logger, build component.BuildInfo, args []string) fleet {
	cfg, ok, err := agent.ConfigFromEnv()
	if !ok {
		return nil
	}
	if err != nil {
		log.Error("The fleet agent is off: the collector runs the pod's own settings", "error", err.Error())
		return nil
	}
	f := &fleetAgent{log: log, cfg: cfg, build: build, settingsURI: settingsURI(args), figures: figures.New(drain.QueuedBytes)}
	var settings []byte
	if f.settingsURI == "" {
		err = errors.New("this collector runs a YAML config (--config), not the pod's settings (--config=" + sidecarconfig.SettingsConfigURI + "): re-create the pod with a current injector")
	} else {
		settings, err = settingsprovider.Read(f.settingsURI)
	}
	f.live = newLive(log, settings, err)
	f.tracker = fleetstatus.NewTracker(f.healthChanged)
	f.live.tracker = f.tracker
	f.live.validate = f.validate
	return f
}

func (f *fleetAgent) prepare(set *otelcol.CollectorSettings) settingsprovider.Options {
	gen := set.Factories
	set.Factories = func() (otelcol.Factories, error) {
		fs, err := gen()
		if err != nil {
			return fs, err
		}
		for t, r := range fs.Receivers {
			if t == fileLogType {
				r = figures.WrapFileLog(r, f.figures)
			}
			fs.Receivers[t] = drain.WrapReceiver(r)
		}
		for t, e := range fs.Exporters {
			fs.Exporters[t] = figures.WrapExporter(e, f.figures)
		}
		fs.Extensions[fleetstatus.Type] = fleetstatus.NewFactory(f.tracker)
		fs.ExtensionModules[fleetstatus.Type] = "github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus (this project)"
		return fs, nil
	}
	rs := &set.ConfigProviderSettings.ResolverSettings
	rs.ConverterFactories = append(rs.ConverterFactories, fleetstatus.NewConverter())
	return settingsprovider.Options{Apply: f.live.applyActive}
}

func (f *fleetAgent) collectorSettings(set otelcol.CollectorSettings) { f.set = set }

func (f *fleetAgent) hooks() runHooks { return f.live }

func (f *fleetAgent) start() func() {
	boot := f.live.bootHash
	a, err := agent.New(agent.Options{
		Config:   f.cfg,
		Identity: agent.IdentityFromEnv(f.live.bootstrap.ClusterName, f.build.Version, boot),
		Log:      f.log,
		Apply:    f.live.Apply,
		Effective: func() agent.Effective {
			y, h := f.live.Effective()
			return agent.Effective{YAML: y, Hash: h}
		},
		Health:  f.tracker.Snapshot,
		Figures: func(ctx context.Context) figures.Report { return f.figures.Report(ctx, time.Now()) },
		Applied: f.live.Applied(),
	})
	if err == nil {
		err = a.Start(context.Background())
	}
	if err != nil {
		f.log.Error("The fleet agent is off: the collector runs its last config", "error", err.Error())
		return func() {}
	}
	f.live.onConfig = a.ConfigChanged
	f.agent.Store(a)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), agentStopWithin)
		defer cancel()
		a.Stop(ctx)
	}
}

func (f *fleetAgent) healthChanged() {
	f.live.healthChanged()
	if a := f.agent.Load(); a != nil {
		a.HealthChanged()
	}
}

// validate checks what ov gives as the collector's `validate` does: the
// same factories and providers, the pod's settings with ov laid over them.
func (f *fleetAgent) validate(ctx context.Context, ov sidecarconfig.Overrides) error {
	set := f.set
	rs := set.ConfigProviderSettings.ResolverSettings
	var providers []confmap.ProviderFactory
	for _, p := range rs.ProviderFactories {
		if p.Create(confmap.ProviderSettings{}).Scheme() != sidecarconfig.SettingsScheme {
			providers = append(providers, p)
		}
	}
	rs.ProviderFactories = append(providers, settingsprovider.NewFactory(settingsprovider.Options{Apply: ov.Apply}))
	rs.URIs = []string{f.settingsURI}
	if rs.DefaultScheme == "" {
		rs.DefaultScheme = "env"
	}
	set.ConfigProviderSettings.ResolverSettings = rs
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	return col.DryRun(ctx)
}
