package drain

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver"
)

func resetPlan(t *testing.T) {
	t.Helper()
	reset := func() {
		plan.Lock()
		plan.keep, plan.ending = nil, false
		plan.Unlock()
	}
	reset()
	t.Cleanup(reset)
}

// counted is a receiver that counts its starts and stops.
type counted struct{ starts, stops atomic.Int32 }

func (c *counted) Start(context.Context, component.Host) error { c.starts.Add(1); return nil }
func (c *counted) Shutdown(context.Context) error              { c.stops.Add(1); return nil }

func countedFactory(c *counted) receiver.Factory {
	return receiver.NewFactory(component.MustNewType("counted"), func() component.Config { return &struct{}{} },
		receiver.WithLogs(func(context.Context, receiver.Settings, component.Config, consumer.Logs) (receiver.Logs, error) {
			return c, nil
		}, component.StabilityLevelBeta))
}

// notReady runs d.NotReady in the background.
func notReady(d interface{ NotReady() error }) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		_ = d.NotReady()
		close(done)
	}()
	return done
}

func waitDone(t *testing.T, done <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("%s did not return within %s", what, within)
	}
}

func TestASwapKeepingEveryQueueDoesNotWait(t *testing.T) {
	resetPlan(t)
	st := newStorage(t)
	fileLog := getClient(t, st, component.KindReceiver, component.MustNewID("file_log"), "")
	queue := getClient(t, st, component.KindExporter, component.MustNewIDWithName("otlp_grpc", "gateway"), "logs")
	live := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, live, 100)
	// A file not read to its end and a queue holding a request: what the
	// pod's end would wait for.
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 10}))
	set(t, queue, queueMetadataKey, queueMeta(5, 500, 0, 1))

	d, logs := drainWith(t, st, time.Hour)
	_ = d.Ready()
	PlanSwap(map[QueueRef]bool{{Exporter: "otlp_grpc/gateway", Signal: "logs"}: true})
	waitDone(t, notReady(d), 5*time.Second, "a swap's drain that keeps every queue")
	if logs.FilterMessageSnippet("nothing to wait for").Len() != 1 {
		t.Fatalf("want the swap's no-wait message, got %v", logs.All())
	}
	// The plan is used once: the next drain is the pod's end, and waits.
	_ = d.Ready()
	select {
	case <-notReady(d):
		t.Fatal("the drain after a swap's did not wait for the unread file")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestASwapSendsTheQueuesItDropsAfterStoppingTheReceivers(t *testing.T) {
	resetPlan(t)
	st := newStorage(t)
	kept := getClient(t, st, component.KindExporter, component.MustNewIDWithName("otlp_grpc", "gateway"), "traces")
	dropped := getClient(t, st, component.KindExporter, component.MustNewIDWithName("otlp_grpc", "gateway"), "logs")
	set(t, kept, queueMetadataKey, queueMeta(5, 500, 0, 1))
	set(t, dropped, queueMetadataKey, queueMeta(3, 300, 0, 1))
	if got := QueuedBytes(context.Background()); got != 800 {
		t.Errorf("QueuedBytes = %d, want 800", got)
	}

	var c counted
	r, err := WrapReceiver(countedFactory(&c)).CreateLogs(context.Background(), receiver.Settings{ID: component.MustNewID("counted")}, &struct{}{}, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), host{}); err != nil {
		t.Fatal(err)
	}

	d, logs := drainWith(t, st, time.Minute)
	_ = d.Ready()
	PlanSwap(map[QueueRef]bool{{Exporter: "otlp_grpc/gateway", Signal: "traces"}: true})
	done := notReady(d)
	deadline := time.Now().Add(5 * time.Second)
	for c.stops.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.stops.Load() != 1 {
		t.Fatal("the swap's drain did not stop the receivers first")
	}
	select {
	case <-done:
		t.Fatal("the swap's drain did not wait for the queue the next config drops")
	case <-time.After(200 * time.Millisecond):
	}
	set(t, dropped, queueMetadataKey, queueMeta(0, 0, 1, 1))
	waitDone(t, done, 5*time.Second, "the swap's drain once the dropped queue is sent")
	if logs.FilterMessageSnippet("the queues on disk of the exporters the next config drops are sent").Len() != 1 {
		t.Fatalf("want the sent message, got %v", logs.All())
	}
	// The service stops the receiver again: once is all it gets.
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.stops.Load() != 1 {
		t.Fatalf("the receiver was stopped %d times", c.stops.Load())
	}
}

func TestThePodEndingDuringASwapDrainsEverything(t *testing.T) {
	resetPlan(t)
	st := newStorage(t)
	dropped := getClient(t, st, component.KindExporter, component.MustNewID("otlp_grpc"), "logs")
	set(t, dropped, queueMetadataKey, queueMeta(3, 300, 0, 1))
	d, logs := drainWith(t, st, time.Minute)
	_ = d.Ready()
	PlanSwap(nil)
	done := notReady(d)
	deadline := time.Now().Add(5 * time.Second)
	for len(Pending()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(Pending()) == 0 {
		t.Fatal("the swap's drain did not begin")
	}
	Ending()
	// A swap planned after the end began is ignored.
	PlanSwap(nil)
	if _, ok := takeSwap(); ok {
		t.Fatal("a swap was planned while the pod ends")
	}
	set(t, dropped, queueMetadataKey, queueMeta(0, 0, 1, 1))
	waitDone(t, done, 5*time.Second, "the drain")
	if logs.FilterMessageSnippet("the pod ends during a config swap").Len() != 1 ||
		logs.FilterMessageSnippet("every log file read to its end and every queue on disk sent").Len() != 1 {
		t.Fatalf("want the full drain after the swap's, got %v", logs.All())
	}
}
