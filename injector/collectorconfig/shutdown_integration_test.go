package collectorconfig_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// preStopSleep is the collector's preStop sleep in a Job pod as the
// injector writes it for a native sidecar (0 when it adds none).
func preStopSleep(t *testing.T) time.Duration {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "job-x", Namespace: "batch", Labels: map[string]string{injector.FargateProfileLabel: "fp"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "app", Image: "app", Command: []string{"/app"}}}},
	}
	cfg := injector.DefaultConfig()
	if !cfg.NativeSidecars {
		t.Fatal("the injector's default is not a native sidecar")
	}
	res := injector.Mutate(pod, cfg, nil)
	if !res.Injected {
		t.Fatalf("the Job pod was not injected: %v", res.Warnings)
	}
	for _, c := range res.Pod.Spec.InitContainers {
		if c.Name == injector.CollectorContainerName {
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				return 0
			}
			return time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	t.Fatal("no collector in the injected Job pod")
	return 0
}

// TestTheLastLinesOfAnEndingPodArrive: a Job's app writes a burst flat out
// and exits, far ahead of the collector; the kubelet then stops the native
// sidecar as the injector configured it, which is SIGTERM at once (no
// preStop sleep). The drain holds the shutdown until file_log has read every
// file to its end and the queue on disk is sent: every line the app wrote
// arrives exactly once before the collector exits (the pod does not come
// back, so anything read late or left queued would be lost for good), and
// so do a span and a metric sent over OTLP just before the stop (they pass
// through the batch processor).
func TestTheLastLinesOfAnEndingPodArrive(t *testing.T) {
	f := newFixture(t, func(c *sidecarconfig.Config) { c.KubeletStats.Disabled = true })
	const lines = 20000 // per stream
	collector := f.startCollector()
	a := startApp(t, f, lines, 0, "10Mi")
	a.wait(t, 2*time.Minute)
	sendSpan(t, f.cfg.OTLP.GRPCEndpoint, "the app's last span")
	exited := time.Now()
	atExit := f.sink.LogCount()

	// The kubelet's part, for a pod whose app containers have all exited:
	// the sidecar's preStop hook (none), then SIGTERM.
	sleep := preStopSleep(t)
	if sleep != 0 {
		t.Fatalf("the injector gives a native sidecar a preStop sleep of %s: the drain makes it a mere delay", sleep)
	}
	if err := collector.Stop(f.cfg.DrainTimeout + 10*time.Second); err != nil {
		t.Fatalf("the collector did not stop cleanly on SIGTERM: %v", err)
	}
	t.Logf("the app exited with %d of %d lines at the sink; SIGTERM at once; the collector stopped after %s with %d",
		atExit, 2*lines, time.Since(exited).Round(time.Millisecond), f.sink.LogCount())
	if !strings.Contains(collector.Logs(), "Drain: every log file read to its end") {
		t.Errorf("the collector did not report a completed drain:\n%s", collectortest.Tail(collector.Logs(), 10))
	}
	checkExactlyOnceNoBackups(t, f, readCRIFiles(t, a.logDir), lines)
	if spans := f.sink.Spans(); len(spans) != 1 || spans[0].Name != "the app's last span" {
		t.Errorf("the span sent just before the stop: got %+v", spans)
	}
}

// TestADownGatewayDoesNotHoldTheShutdown: the gateway is gone when the pod
// ends. The drain cannot send the queue, so the collector gives up at the
// drain timeout, says what was left, and exits 0 well within the grace
// period rather than hanging until the kubelet kills it.
func TestADownGatewayDoesNotHoldTheShutdown(t *testing.T) {
	const drain = 3 * time.Second
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
		c.DrainTimeout = drain
	})
	collector := f.startCollector()
	f.sink.Close()
	a := startApp(t, f, 2000, 0, "10Mi")
	a.wait(t, time.Minute)

	began := time.Now()
	if err := collector.Stop(drain + 20*time.Second); err != nil {
		t.Fatalf("with the gateway down the collector did not exit cleanly after the drain timeout: %v", err)
	}
	took := time.Since(began)
	logs := collector.Logs()
	if !strings.Contains(logs, "Drain: timeout passed with data not sent") || !strings.Contains(logs, "not sent") {
		t.Fatalf("the collector did not say what the drain left:\n%s", collectortest.Tail(logs, 10))
	}
	if strings.Contains(logs, "Drain: every log file read to its end") {
		t.Fatal("the drain reported success with the gateway down")
	}
	t.Logf("gateway down: the collector exited %s after SIGTERM (drain timeout %s)", took.Round(time.Millisecond), drain)
}

// checkExactlyOnceNoBackups: every line of the files is at the sink once.
func checkExactlyOnceNoBackups(t *testing.T, f *fixture, files []criLine, lines int) {
	t.Helper()
	if len(files) != 2*lines {
		t.Fatalf("the wrapper wrote %d lines, want %d", len(files), 2*lines)
	}
	got := map[string]int{}
	for _, r := range f.sink.Logs() {
		got[r.Attributes["log.iostream"].(string)+" "+r.Body]++
	}
	lost, twice := 0, 0
	for _, l := range files {
		switch n := got[l.stream+" "+l.text]; {
		case n == 0:
			lost++
			if lost <= 5 {
				t.Errorf("lost: %s %q", l.stream, l.text)
			}
		case n > 1:
			twice++
		}
	}
	if lost > 0 || twice > 0 {
		t.Fatalf("%d of %d lines lost, %d repeated", lost, len(files), twice)
	}
}

// stateBytes is the disk the collector's state folder takes (allocated
// blocks, what the kubelet counts against the volume's sizeLimit).
func stateBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

// TestAGatewayOutageCannotFillTheLogsVolume: with the gateway refusing
// everything, the app writes several times what the disk queue may hold.
// The queue stops at its bound (the rest waits in the app's files, which the
// wrapper's budget bounds), and once the gateway is back every line
// arrives exactly once.
func TestAGatewayOutageCannotFillTheLogsVolume(t *testing.T) {
	const queueMiB = sidecarconfig.MinDiskQueueMiB
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
		c.DiskQueueMiB = queueMiB
	})
	f.sink.FailWith(status.Error(codes.Unavailable, "the gateway is down"))
	collector := f.startCollector()
	const lines = 60000 // per stream: ~12 MB of files, 3x what the queue holds
	a := startApp(t, f, lines, 20000, "4Mi")

	var peak int64
	done := false
	for !done {
		select {
		case err := <-a.done:
			if err != nil {
				t.Fatalf("the wrapped app failed: %v", err)
			}
			done = true
		case <-time.After(100 * time.Millisecond):
		}
		peak = max(peak, stateBytes(t, f.state))
	}
	// Let the collector go on retrying for a while with the app done.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, stateBytes(t, f.state))
		time.Sleep(100 * time.Millisecond)
	}
	filesBytes := int64(0)
	for _, l := range readCRIFiles(t, a.logDir) {
		filesBytes += int64(len(l.text)) + 40
	}
	limit := int64(2*queueMiB) << 20
	t.Logf("outage: the app wrote ~%d MiB; the collector's state peaked at %.1f MiB (queue bound %d MiB)", filesBytes>>20, float64(peak)/(1<<20), queueMiB)
	if peak > limit {
		t.Errorf("the collector's state took %.1f MiB during the outage, above %d MiB (twice the queue's bound)", float64(peak)/(1<<20), limit>>20)
	}
	if peak < int64(queueMiB)<<20/2 {
		t.Errorf("the state took only %.1f MiB: the outage did not fill the queue, so the bound was not tested", float64(peak)/(1<<20))
	}
	if got := f.sink.LogCount(); got != 0 {
		t.Fatalf("%d records reached a sink that refuses everything", got)
	}

	f.sink.FailWith(nil)
	files := readCRIFiles(t, a.logDir)
	pollUntil(t, 3*time.Minute, "every line at the sink after the outage", func() bool { return missingAtSink(f, files) == 0 })
	if err := collector.Stop(30 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	checkExactlyOnceNoBackups(t, f, files, lines)
}
