package drain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	filestorage "github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// These unit tests drive the drain with the real file_storage (bbolt files
// in a temp folder), writing what file_log and a sending queue write. The
// integration tests in injector/collectorconfig prove it with the real
// collector.

type host map[component.ID]component.Component

func (h host) GetExtensions() map[component.ID]component.Component { return h }

func settings(t *testing.T, id component.ID, log *zap.Logger) extension.Settings {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	return extension.Settings{ID: id, TelemetrySettings: component.TelemetrySettings{Logger: log}}
}

// newStorage is the distribution's file_storage, started, in a temp folder.
func newStorage(t *testing.T) *watchedStorage {
	t.Helper()
	f := WrapStorage(filestorage.NewFactory())
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = t.TempDir()
	cfg.Compaction.Directory = cfg.Directory
	ext, err := f.Create(context.Background(), settings(t, component.NewID(f.Type()), nil), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), host{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	st, ok := ext.(*watchedStorage)
	if !ok {
		t.Fatalf("WrapStorage made a %T", ext)
	}
	return st
}

func getClient(t *testing.T, st storage.Extension, kind component.Kind, id component.ID, name string) storage.Client {
	t.Helper()
	c, err := st.GetClient(context.Background(), kind, id, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// The key file_log's stanza pipeline writes: the operator's ID, a dot, knownFiles.
const fileLogKey = "file_input.knownFiles"

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Repeat("x", size)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func set(t *testing.T, c storage.Client, key string, value []byte) {
	t.Helper()
	if err := c.Batch(context.Background(), storage.SetOperation(key, value)); err != nil {
		t.Fatal(err)
	}
}

func expectPending(t *testing.T, st status, want string) {
	t.Helper()
	if st.done() || !strings.Contains(st.String(), want) {
		t.Fatalf("want pending %q, got done=%v %q", want, st.done(), st)
	}
}

func TestTheWaitFollowsFileLogAndTheQueue(t *testing.T) {
	ctx := context.Background()
	st := newStorage(t)
	fileLog := getClient(t, st, component.KindReceiver, component.MustNewID("filelog"), "")
	queue := getClient(t, st, component.KindExporter, component.MustNewIDWithName("otlp_grpc", "gateway"), "logs")
	dir := t.TempDir()
	live, backup, gone := filepath.Join(dir, "0.log"), filepath.Join(dir, "0.log.20261122-180000"), filepath.Join(dir, "0.log.20261122-170000")
	writeFile(t, live, 100)
	writeFile(t, backup, 50)

	// A checkpoint from before the stop does not count.
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 100}, fileOffset{backup, 50}))
	start := time.Now()
	w := newWait([]*watchedStorage{st}, start)
	later := start.Add(time.Second)
	expectPending(t, w.check(ctx, later), "filelog: 0 of 2 polls since the stop began")

	// Two polls after the stop, the live file not read to its end.
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 60}, fileOffset{backup, 50}))
	expectPending(t, w.check(ctx, later), "1 of 2 polls")
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{gone, 10}, fileOffset{live, 60}, fileOffset{backup, 50}))
	expectPending(t, w.check(ctx, later), live+": read 60 of 100 bytes")

	// Read to the end (a deleted backup does not count): done, with a
	// queue that was never written.
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{gone, 10}, fileOffset{live, 100}, fileOffset{backup, 50}))
	if s := w.check(ctx, later); !s.done() || s.files != 2 || s.queues != 1 {
		t.Fatalf("want done with 2 files and 1 queue, got %+v", s)
	}

	// The queue holds a request, then sends it: empty, but the drain waits
	// for a batch that may still be on its way.
	set(t, queue, queueMetadataKey, queueMeta(100, 4000, 6, 7))
	expectPending(t, w.check(ctx, time.Now()), "otlp_grpc/gateway (logs): 1 requests (100 items, 4000 bytes) not sent")
	set(t, queue, queueMetadataKey, queueMeta(100, 4000, 7, 7, 6))
	expectPending(t, w.check(ctx, time.Now()), "1 requests")
	set(t, queue, queueMetadataKey, queueMeta(0, 0, 7, 7))
	expectPending(t, w.check(ctx, time.Now()), "waiting 300ms for a late batch")
	if s := w.check(ctx, time.Now().Add(quiet)); !s.done() {
		t.Fatalf("want done once the queue was quiet, got %q", s)
	}

	// The file grows again (a container still writing): not done.
	writeFile(t, live, 120)
	expectPending(t, w.check(ctx, time.Now().Add(quiet)), "read 100 of 120 bytes")

	// A closed client is not waited for.
	if err := fileLog.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := w.check(ctx, time.Now().Add(quiet)); !s.done() || s.files != 0 {
		t.Fatalf("a closed file_log is still waited for: %+v", s)
	}
}

// drainWith starts a drain extension in a host holding st.
func drainWith(t *testing.T, st *watchedStorage, timeout time.Duration) (extensioncapabilities.PipelineWatcher, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Timeout = timeout
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := f.Create(context.Background(), settings(t, component.NewID(Type), zap.New(core)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := host{component.MustNewID("file_storage"): st, component.NewID(Type): ext}
	if err := ext.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	return ext.(extensioncapabilities.PipelineWatcher), logs
}

func TestNotReadyWaitsUntilDrainedOrTimeout(t *testing.T) {
	st := newStorage(t)
	queue := getClient(t, st, component.KindExporter, component.MustNewID("otlp_grpc"), "traces")

	t.Run("a collector that never started does not wait", func(t *testing.T) {
		set(t, queue, queueMetadataKey, queueMeta(1, 10, 0, 1))
		d, logs := drainWith(t, st, time.Hour)
		if err := d.NotReady(); err != nil {
			t.Fatal(err)
		}
		if logs.Len() != 0 {
			t.Fatalf("logged %v", logs.All())
		}
	})
	t.Run("a queue that cannot be sent: the timeout, and what is left", func(t *testing.T) {
		set(t, queue, queueMetadataKey, queueMeta(1, 10, 0, 1))
		d, logs := drainWith(t, st, 200*time.Millisecond)
		_ = d.Ready()
		if err := d.NotReady(); err != nil {
			t.Fatal(err)
		}
		got := logs.FilterMessageSnippet("Drain: timeout passed").All()
		if len(got) != 1 || !strings.Contains(fmt.Sprint(got[0].ContextMap()["pending"]), "otlp_grpc (traces): 1 requests") {
			t.Fatalf("want one timeout message naming the queue, got %v", logs.All())
		}
	})
	t.Run("sent", func(t *testing.T) {
		set(t, queue, queueMetadataKey, queueMeta(0, 0, 1, 1))
		d, logs := drainWith(t, st, time.Minute)
		_ = d.Ready()
		if err := d.NotReady(); err != nil {
			t.Fatal(err)
		}
		if logs.FilterMessageSnippet("Drain: every log file read to its end").Len() != 1 {
			t.Fatalf("want the drained message, got %v", logs.All())
		}
	})
}

func TestConfigNeedsATimeout(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSeconds") {
		t.Fatalf("a zero timeout: %v", err)
	}
}

// TestTheWaitHoldsForRecordsOperatorsHold: with multiline parsing, file_log's
// recombine operators keep the last record of a stream up to their flush
// period after reading it; the queues only count once that has passed since
// every file was read.
func TestTheWaitHoldsForRecordsOperatorsHold(t *testing.T) {
	ctx := context.Background()
	st := newStorage(t)
	fileLog := getClient(t, st, component.KindReceiver, component.MustNewID("filelog"), "")
	getClient(t, st, component.KindExporter, component.MustNewIDWithName("otlp_grpc", "gateway"), "logs")
	live := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, live, 100)

	start := time.Now()
	w := newWait([]*watchedStorage{st}, start)
	w.hold = 2 * time.Second
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 40}))
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 40}))
	expectPending(t, w.check(ctx, start.Add(time.Second)), "read 40 of 100 bytes")
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 100}))
	read := start.Add(3 * time.Second)
	expectPending(t, w.check(ctx, read), "every file read; waiting 2s for the records file_log's operators hold")
	expectPending(t, w.check(ctx, read.Add(1900*time.Millisecond)), "waiting 2s")
	if s := w.check(ctx, read.Add(2*time.Second)); !s.done() {
		t.Fatalf("want done once the hold passed, got %q", s)
	}

	// The file grows (a line written after the stop): the hold starts again
	// once it is read.
	writeFile(t, live, 150)
	expectPending(t, w.check(ctx, read.Add(3*time.Second)), "read 100 of 150 bytes")
	set(t, fileLog, fileLogKey, checkpoint(t, fileOffset{live, 150}))
	expectPending(t, w.check(ctx, read.Add(4*time.Second)), "waiting 2s")
	if s := w.check(ctx, read.Add(6*time.Second)); !s.done() {
		t.Fatalf("want done, got %q", s)
	}
	if err := (&Config{Timeout: time.Second, Hold: -time.Second}).Validate(); err == nil {
		t.Fatal("a negative hold passed validation")
	}
}
