//go:build !windows

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func TestSettingsURI(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--config=fargate:env:FARGATE_OTEL_SETTINGS"}, "fargate:env:FARGATE_OTEL_SETTINGS"},
		{[]string{"--feature-gates=x", "--config", "fargate:file:/s.json"}, "fargate:file:/s.json"},
		{[]string{"-config=env:FARGATE_OTEL_CONFIG", "-config=fargate:env:S"}, "fargate:env:S"},
		{[]string{"--config=env:FARGATE_OTEL_CONFIG"}, ""},
		{[]string{"validate", "--config"}, ""},
	} {
		if got := settingsURI(tt.args); got != tt.want {
			t.Errorf("settingsURI(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestDiskQueues(t *testing.T) {
	cfg := sidecarconfig.Default()
	cfg.Exporters = append(cfg.Exporters,
		sidecarconfig.Exporter{ID: "debug", Config: map[string]any{}},
		sidecarconfig.Exporter{ID: "otlp_http/vendor", Config: map[string]any{"endpoint": "https://x", "sending_queue": map[string]any{"storage": "file_storage"}}, Signals: []sidecarconfig.Signal{sidecarconfig.Traces}})
	rendered, err := sidecarconfig.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := diskQueues(rendered)
	if err != nil {
		t.Fatal(err)
	}
	want := map[drain.QueueRef]bool{
		{Exporter: "otlp_grpc/gateway", Signal: "logs"}: true, {Exporter: "otlp_grpc/gateway", Signal: "metrics"}: true,
		{Exporter: "otlp_grpc/gateway", Signal: "traces"}: true, {Exporter: "otlp_http/vendor", Signal: "traces"}: true,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queues %v, want %v", got, want)
	}
}

// fakeCollector stands for the collector the supervisor runs: it renders
// what the config provider would, fails to start when the config says so,
// and otherwise runs until stopped.
type fakeCollector struct {
	l       *live
	ready   extensioncapabilities.PipelineWatcher
	starts  atomic.Int32
	running atomic.Pointer[string] // the first exporter of the running config
}

func (c *fakeCollector) start(ctx context.Context) error {
	c.starts.Add(1)
	cfg, err := c.l.applyActive(c.l.bootstrap)
	if err != nil {
		return err
	}
	id := cfg.Exporters[0].ID
	if strings.HasSuffix(id, "/nostart") {
		return fmt.Errorf("cannot start pipelines: failed to start %q exporter: open /nope: no such file or directory", id)
	}
	c.running.Store(&id)
	_ = c.ready.Ready()
	<-ctx.Done()
	_ = c.ready.NotReady()
	return nil
}

func overridesBody(t *testing.T, exporter string) []byte {
	t.Helper()
	body, err := sidecarconfig.Overrides{Exporters: []sidecarconfig.Exporter{{ID: exporter, Config: map[string]any{}}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func awaitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLiveConfig drives the live config with the real supervisor loop: a
// swap, settings refused before anything changes, settings that do not
// start and are rolled back, unchanged settings, and a restart that runs
// the saved ones.
func TestLiveConfig(t *testing.T) {
	boot := sidecarconfig.Default()
	boot.StorageDir = t.TempDir()
	settings, err := sidecarconfig.Encode(boot)
	if err != nil {
		t.Fatal(err)
	}
	log := jsonLogger(io.Discard)
	l := newLive(log, settings, nil)
	if l.bootErr != nil {
		t.Fatal(l.bootErr)
	}
	l.tracker = fleetstatus.NewTracker(l.healthChanged)
	l.validate = func(_ context.Context, ov sidecarconfig.Overrides) error {
		if strings.HasSuffix(ov.Exporters[0].ID, "/invalid") {
			return errors.New(`unsupported compression type "brotli"`)
		}
		return nil
	}
	var configChanges atomic.Int32
	l.onConfig = func() { configChanges.Add(1) }
	ext, err := fleetstatus.NewFactory(l.tracker).Create(context.Background(), extension.Settings{ID: component.NewID(fleetstatus.Type)}, &struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCollector{l: l, ready: ext.(extensioncapabilities.PipelineWatcher)}
	s := newSupervisor(io.Discard, "127.0.0.1:0")
	s.firstRetry = time.Hour // a failed start waits unless a swap wakes it
	s.hooks = l
	done := make(chan struct{})
	go func() {
		s.run(c.start)
		close(done)
	}()
	running := func() string {
		if p := c.running.Load(); p != nil {
			return *p
		}
		return ""
	}
	awaitTrue(t, "the first start", func() bool { return running() == sidecarconfig.DefaultGatewayExporterID })
	bootYAML, bootHash := l.Effective()
	if !bytes.Contains(bootYAML, []byte("otlp_grpc/gateway")) || bootHash != l.bootHash || l.Applied() != nil {
		t.Fatalf("effective at start: hash %s (boot %s), applied %x", bootHash, l.bootHash, l.Applied())
	}

	// A swap.
	var applying atomic.Int32
	body := overridesBody(t, "debug/second")
	if err := l.Apply(context.Background(), body, func() { applying.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if running() != "debug/second" || c.starts.Load() != 2 || applying.Load() != 1 {
		t.Fatalf("after the swap: running %s, %d starts, %d applying", running(), c.starts.Load(), applying.Load())
	}
	if y, h := l.Effective(); !bytes.Contains(y, []byte("debug/second")) || h == bootHash {
		t.Fatalf("effective after the swap: %s", h)
	}
	saved, err := os.ReadFile(filepath.Join(boot.StorageDir, "fleet", "overrides.json"))
	if err != nil || !bytes.Equal(saved, body) {
		t.Fatalf("saved %s (%v), want %s", saved, err, body)
	}
	if !bytes.Equal(l.Applied(), bodyHash(body)) {
		t.Fatalf("applied hash %x", l.Applied())
	}

	// Refused before anything changes.
	err = l.Apply(context.Background(), overridesBody(t, "debug/invalid"), func() { applying.Add(1) })
	if err == nil || !strings.Contains(err.Error(), "brotli") || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("invalid settings: %v", err)
	}
	if c.starts.Load() != 2 || applying.Load() != 1 {
		t.Fatalf("invalid settings restarted the collector (%d starts)", c.starts.Load())
	}
	// Settings the Overrides themselves refuse.
	if err := l.Apply(context.Background(), []byte(`{"logLevel":"loud"}`), func() {}); err == nil || c.starts.Load() != 2 {
		t.Fatalf("a bad log level: %v, %d starts", err, c.starts.Load())
	}

	// Settings that do not start: rolled back to the last good ones.
	err = l.Apply(context.Background(), overridesBody(t, "debug/nostart"), func() { applying.Add(1) })
	if err == nil || !strings.Contains(err.Error(), "did not start") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("settings that do not start: %v", err)
	}
	awaitTrue(t, "the rollback", func() bool { return running() == "debug/second" && c.starts.Load() == 4 })
	awaitTrue(t, "the rolled back collector running", func() bool { return l.tracker.Snapshot().Running })
	if y, _ := l.Effective(); !bytes.Contains(y, []byte("debug/second")) {
		t.Fatal("the effective config after the rollback is not the last good one")
	}
	if saved, _ := os.ReadFile(filepath.Join(boot.StorageDir, "fleet", "overrides.json")); !bytes.Equal(saved, body) {
		t.Fatalf("settings that failed were saved: %s", saved)
	}

	// The same settings again: nothing restarts.
	if err := l.Apply(context.Background(), body, func() { applying.Add(1) }); err != nil || c.starts.Load() != 4 {
		t.Fatalf("unchanged settings: %v, %d starts", err, c.starts.Load())
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not stop on SIGTERM")
	}

	// The next start of the container runs the saved settings.
	again := newLive(log, settings, nil)
	if y, _ := again.Effective(); !bytes.Contains(y, []byte("debug/second")) || !bytes.Equal(again.Applied(), bodyHash(body)) {
		t.Fatal("a restart does not run the saved settings")
	}
	// Saved settings that no longer apply are ignored.
	if err := os.WriteFile(filepath.Join(boot.StorageDir, "fleet", "overrides.json"), []byte(`{"traceSampling":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if y, _ := newLive(log, settings, nil).Effective(); !bytes.Equal(y, bootYAML) {
		t.Fatal("bad saved settings were used")
	}
	// Settings that cannot be read refuse live settings, saying why.
	bad := newLive(log, []byte("{"), nil)
	if err := bad.Apply(context.Background(), body, func() {}); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("unreadable settings: %v", err)
	}
	// The swap changed what runs; the failed settings and the rollback did not.
	if configChanges.Load() != 1 {
		t.Errorf("%d config changes reported, want 1", configChanges.Load())
	}
}
