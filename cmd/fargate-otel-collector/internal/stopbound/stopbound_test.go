package stopbound

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// stuckReceiver's Shutdown returns only once release is closed, like
// kubelet_stats' while a scrape waits for an answer that does not come.
type stuckReceiver struct {
	release  chan struct{}
	shutdown chan struct{}
}

func (*stuckReceiver) Start(context.Context, component.Host) error { return nil }

func (r *stuckReceiver) Shutdown(context.Context) error {
	close(r.shutdown)
	<-r.release
	return errors.New("released")
}

var testType = component.MustNewType("stuck")

func stuckFactory(r *stuckReceiver) receiver.Factory {
	return xreceiver.NewFactory(testType, func() component.Config { return &struct{}{} },
		xreceiver.WithMetrics(func(context.Context, receiver.Settings, component.Config, consumer.Metrics) (receiver.Metrics, error) {
			return r, nil
		}, component.StabilityLevelBeta),
		xreceiver.WithDeprecatedTypeAlias(component.MustNewType("stuckold")))
}

func create(t *testing.T, f receiver.Factory, log *zap.Logger) receiver.Metrics {
	t.Helper()
	set := receiver.Settings{ID: component.NewID(testType), TelemetrySettings: component.TelemetrySettings{Logger: log}}
	r, err := f.CreateMetrics(context.Background(), set, f.CreateDefaultConfig(), consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAStuckShutdownIsLeftBehind: the wrapped receiver's Shutdown returns
// at the bound and says why, while the receiver's own is still blocked.
func TestAStuckShutdownIsLeftBehind(t *testing.T) {
	inner := &stuckReceiver{release: make(chan struct{}), shutdown: make(chan struct{})}
	defer close(inner.release)
	core, logs := observer.New(zap.WarnLevel)
	r := create(t, WrapMetrics(stuckFactory(inner), 50*time.Millisecond), zap.New(core))

	returned := make(chan error, 1)
	go func() { returned <- r.Shutdown(context.Background()) }()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Shutdown: %v, want nil (the stop goes on)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wrapped Shutdown did not return while the receiver's own was stuck")
	}
	select {
	case <-inner.shutdown:
	default:
		t.Fatal("the receiver's own Shutdown was never called")
	}
	if logs.FilterMessageSnippet("did not end in time").Len() != 1 {
		t.Fatalf("no warning about the work left behind: %v", logs.All())
	}
}

// TestAPromptShutdownIsWaitedFor: a Shutdown that returns in time is
// waited for and its error kept; nothing is logged.
func TestAPromptShutdownIsWaitedFor(t *testing.T) {
	inner := &stuckReceiver{release: make(chan struct{}), shutdown: make(chan struct{})}
	close(inner.release)
	core, logs := observer.New(zap.WarnLevel)
	r := create(t, WrapMetrics(stuckFactory(inner), time.Minute), zap.New(core))
	if err := r.Shutdown(context.Background()); err == nil || err.Error() != "released" {
		t.Fatalf("Shutdown: %v, want the receiver's own error", err)
	}
	if logs.Len() != 0 {
		t.Fatalf("logged %v", logs.All())
	}
}

// TestTheFactoryKeepsItsIdentity: a config written for the receiver works
// unchanged (type, deprecated alias, stability).
func TestTheFactoryKeepsItsIdentity(t *testing.T) {
	orig := stuckFactory(&stuckReceiver{})
	w := WrapMetrics(orig, time.Second)
	if w.Type() != orig.Type() || w.MetricsStability() != orig.MetricsStability() {
		t.Fatalf("wrapped: type %s stability %s, want %s %s", w.Type(), w.MetricsStability(), orig.Type(), orig.MetricsStability())
	}
	a, ok := w.(aliased)
	if !ok || a.DeprecatedAlias().String() != "stuckold" {
		t.Fatalf("the deprecated alias was lost: %v", w)
	}
}
