// Package stopbound keeps a receiver whose shutdown waits on work it cannot
// cancel from holding the whole collector's shutdown.
//
// kubelet_stats (v0.159.0) is such a receiver: its Shutdown waits for the
// scrape in flight, and a scrape is an HTTP request without a timeout that
// ignores the scrape's context (internal/kubelet's client). When the
// kubelet, the API server's nodes/proxy or the node proxy is slow to
// answer, or never does, the shutdown waits as long, past the pod's grace
// period, until the kubelet kills the collector. The receivers of a
// pipeline are stopped before its processors and exporters, so the queues
// on disk were never closed either.
//
// Wrap gives such a receiver's Shutdown a bound: past it, the shutdown goes
// on without waiting for the scrape (its metrics, one interval's worth, are
// lost; the pod is ending) and says so.
package stopbound

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"
	"go.uber.org/zap"
)

// DefaultWait is how long a stopping receiver may finish the work in
// flight: a scrape answered in time still reaches the exporters.
const DefaultWait = 2 * time.Second

type aliased interface{ DeprecatedAlias() component.Type }

// WrapMetrics returns factory with its metrics receivers' Shutdown bounded
// by wait. The type, alias, config and stability are factory's own.
func WrapMetrics(factory receiver.Factory, wait time.Duration) receiver.Factory {
	opts := []xreceiver.FactoryOption{
		xreceiver.WithMetrics(func(ctx context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			r, err := factory.CreateMetrics(ctx, set, cfg, next)
			if err != nil {
				return nil, err
			}
			return &bounded{Component: r, wait: wait, id: set.ID, log: set.Logger}, nil
		}, factory.MetricsStability()),
	}
	if a, ok := factory.(aliased); ok && a.DeprecatedAlias().String() != "" {
		opts = append(opts, xreceiver.WithDeprecatedTypeAlias(a.DeprecatedAlias()))
	}
	return xreceiver.NewFactory(factory.Type(), factory.CreateDefaultConfig, opts...)
}

// bounded is a receiver whose Shutdown returns within wait.
type bounded struct {
	component.Component
	wait time.Duration
	id   component.ID
	log  *zap.Logger
}

func (b *bounded) Shutdown(ctx context.Context) error {
	return shutdownWithin(ctx, b.Component.Shutdown, b.wait, func() {
		b.log.Warn("Stopping the receiver: work in flight (a scrape whose answer has not come) did not end in time; "+
			"the shutdown goes on without it and its data is lost (is the endpoint slow or unreachable?)",
			zap.String("receiver", b.id.String()), zap.Duration("waited", b.wait))
	})
}

// shutdownWithin runs shutdown and waits for it at most wait (or until ctx
// ends); when it does not return in time, it calls gaveUp and returns nil:
// the shutdown goroutine is left behind, which is fine in a process that is
// about to exit.
func shutdownWithin(ctx context.Context, shutdown func(context.Context) error, wait time.Duration, gaveUp func()) error {
	done := make(chan error, 1)
	go func() { done <- shutdown(ctx) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	case <-ctx.Done():
	}
	gaveUp()
	return nil
}
