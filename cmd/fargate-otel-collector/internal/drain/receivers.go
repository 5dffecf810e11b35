package drain

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"
)

// A live config swap that drops an exporter with a queue on disk must send
// that queue first: the next collector has no exporter to send it, and
// file_log's offsets have already moved past its lines. While the
// pipelines run the queue never empties under a steady stream, and the
// service stops the receivers only after the drain. So such a drain stops
// every receiver itself first (file_log saves its offsets as at any stop;
// the apps' OTLP exporters retry into the next collector), and then waits
// for the queues. The receivers of the distribution are wrapped so that the
// drain can stop them, and their later Shutdown by the service does nothing
// more.

// WrapReceiver returns factory with its receivers stoppable by the drain.
// The type, alias, config and stabilities are factory's own.
func WrapReceiver(factory receiver.Factory) receiver.Factory {
	var opts []xreceiver.FactoryOption
	if sl := factory.LogsStability(); sl != component.StabilityLevelUndefined {
		opts = append(opts, xreceiver.WithLogs(func(ctx context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			r, err := factory.CreateLogs(ctx, set, cfg, next)
			return stoppable(r, err)
		}, sl))
	}
	if sl := factory.MetricsStability(); sl != component.StabilityLevelUndefined {
		opts = append(opts, xreceiver.WithMetrics(func(ctx context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			r, err := factory.CreateMetrics(ctx, set, cfg, next)
			return stoppable(r, err)
		}, sl))
	}
	if sl := factory.TracesStability(); sl != component.StabilityLevelUndefined {
		opts = append(opts, xreceiver.WithTraces(func(ctx context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
			r, err := factory.CreateTraces(ctx, set, cfg, next)
			return stoppable(r, err)
		}, sl))
	}
	if xf, ok := factory.(xreceiver.Factory); ok {
		if sl := xf.ProfilesStability(); sl != component.StabilityLevelUndefined {
			opts = append(opts, xreceiver.WithProfiles(xf.CreateProfiles, sl))
		}
	}
	if a, ok := factory.(interface{ DeprecatedAlias() component.Type }); ok && a.DeprecatedAlias().String() != "" {
		opts = append(opts, xreceiver.WithDeprecatedTypeAlias(a.DeprecatedAlias()))
	}
	return xreceiver.NewFactory(factory.Type(), factory.CreateDefaultConfig, opts...)
}

func stoppable(r component.Component, err error) (*stoppableReceiver, error) {
	if err != nil {
		return nil, err
	}
	return &stoppableReceiver{Component: r}, nil
}

// stoppableReceiver is a receiver whose Shutdown runs once, whether the
// drain or the service asks first.
type stoppableReceiver struct {
	component.Component
	once sync.Once
	err  error
}

// running are the receivers started and not stopped, in this process.
var running = struct {
	sync.Mutex
	receivers map[*stoppableReceiver]bool
}{receivers: map[*stoppableReceiver]bool{}}

func (r *stoppableReceiver) Start(ctx context.Context, host component.Host) error {
	if err := r.Component.Start(ctx, host); err != nil {
		return err
	}
	running.Lock()
	running.receivers[r] = true
	running.Unlock()
	return nil
}

func (r *stoppableReceiver) Shutdown(ctx context.Context) error {
	r.once.Do(func() {
		running.Lock()
		delete(running.receivers, r)
		running.Unlock()
		r.err = r.Component.Shutdown(ctx)
	})
	return r.err
}

// stopReceivers stops every running receiver, together, and returns when
// they have all stopped.
func stopReceivers(ctx context.Context) error {
	running.Lock()
	rs := make([]*stoppableReceiver, 0, len(running.receivers))
	for r := range running.receivers {
		rs = append(rs, r)
	}
	running.Unlock()
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = r.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
