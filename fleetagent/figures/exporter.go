package figures

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/xexporter"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// An export fails or succeeds after the sending queue, in the exporter's
// own goroutines, where no wrapper of the exporter's consumer can see it.
// exporterhelper counts each outcome with two counters of its telemetry
// (otelcol_exporter_sent_<items> and otelcol_exporter_send_failed_<items>,
// recorded once per request after its retries: pinned v0.159.0,
// internal/obs_report_sender.go), whatever the service's metrics level. So
// each exporter is created with a MeterProvider that passes those counters
// through to the service's and adds to the figures too.

const (
	exporterHelperScope = "go.opentelemetry.io/collector/exporter/exporterhelper"
	sentPrefix          = "otelcol_exporter_sent_"
	failedPrefix        = "otelcol_exporter_send_failed_"
)

// WrapExporter returns factory with its exporters' outcomes counted into f
// per signal. The type, alias, config and stabilities are factory's own.
func WrapExporter(factory exporter.Factory, f *Figures) exporter.Factory {
	var opts []xexporter.FactoryOption
	if sl := factory.LogsStability(); sl != component.StabilityLevelUndefined {
		opts = append(opts, xexporter.WithLogs(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
			return factory.CreateLogs(ctx, counted(set, f, "logs"), cfg)
		}, sl))
	}
	if sl := factory.MetricsStability(); sl != component.StabilityLevelUndefined {
		opts = append(opts, xexporter.WithMetrics(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
			return factory.CreateMetrics(ctx, counted(set, f, "metrics"), cfg)
		}, sl))
	}
	if sl := factory.TracesStability(); sl != component.StabilityLevelUndefined {
		opts = append(opts, xexporter.WithTraces(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
			return factory.CreateTraces(ctx, counted(set, f, "traces"), cfg)
		}, sl))
	}
	if xf, ok := factory.(xexporter.Factory); ok {
		if sl := xf.ProfilesStability(); sl != component.StabilityLevelUndefined {
			opts = append(opts, xexporter.WithProfiles(xf.CreateProfiles, sl))
		}
	}
	if a, ok := factory.(aliased); ok && a.DeprecatedAlias().String() != "" {
		opts = append(opts, xexporter.WithDeprecatedTypeAlias(a.DeprecatedAlias()))
	}
	return xexporter.NewFactory(factory.Type(), factory.CreateDefaultConfig, opts...)
}

func counted(set exporter.Settings, f *Figures, signal string) exporter.Settings {
	mp := set.MeterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	set.MeterProvider = &meterProvider{MeterProvider: mp, f: f, signal: signal}
	return set
}

type meterProvider struct {
	metric.MeterProvider
	f      *Figures
	signal string
}

func (p *meterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	m := p.MeterProvider.Meter(name, opts...)
	if name != exporterHelperScope {
		return m
	}
	return &meter{Meter: m, f: p.f, signal: p.signal}
}

type meter struct {
	metric.Meter
	f      *Figures
	signal string
}

func (m *meter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	if err != nil {
		return c, err
	}
	switch {
	case strings.HasPrefix(name, sentPrefix):
		return &counter{Int64Counter: c, add: func(n int64) { m.f.exported(m.signal, n, 0, time.Now()) }}, nil
	case strings.HasPrefix(name, failedPrefix):
		return &counter{Int64Counter: c, add: func(n int64) { m.f.exported(m.signal, 0, n, time.Now()) }}, nil
	default:
		return c, nil
	}
}

type counter struct {
	metric.Int64Counter
	add func(int64)
}

func (c *counter) Add(ctx context.Context, n int64, opts ...metric.AddOption) {
	c.add(n)
	c.Int64Counter.Add(ctx, n, opts...)
}
