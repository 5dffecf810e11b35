package collectorconfig_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/collectorconfig"
)

// preStopSleep is the collector's preStop sleep in a Job pod as the
// injector writes it (0 when it adds none).
func preStopSleep(t *testing.T) time.Duration {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "job-x", Namespace: "batch", Labels: map[string]string{injector.FargateProfileLabel: "fp"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "app", Image: "app", Command: []string{"/app"}}}},
	}
	res := injector.Mutate(pod, injector.DefaultConfig(), nil)
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

// TestTheLastLinesOfAnEndingPodArrive: a Job's app writes a burst and
// exits; the kubelet then stops the native sidecar as the injector
// configured it: its preStop sleep, then SIGTERM. Every line the app wrote
// arrives, exactly once, before the collector exits: the pod does not come
// back, so anything read late or left in a queue would be lost for good.
func TestTheLastLinesOfAnEndingPodArrive(t *testing.T) {
	f := newFixture(t, nil)
	const lines = 20000 // per stream, written flat out: the collector is behind when the app exits
	collector := f.startCollector()
	a := startApp(t, f, lines, 0, "10Mi")
	a.wait(t, 2*time.Minute)
	exited := time.Now()

	// The kubelet's part, for a pod whose app containers have all exited:
	// the sidecar's preStop hook, then SIGTERM.
	sleep := preStopSleep(t)
	time.Sleep(sleep)
	if err := collector.Stop(30 * time.Second); err != nil {
		t.Fatalf("the collector did not stop cleanly on SIGTERM: %v", err)
	}
	t.Logf("the app exited; the collector got SIGTERM %s later (preStop sleep %s) and stopped after %s; %d of %d lines at the sink",
		sleep, sleep, time.Since(exited).Round(time.Millisecond), f.sink.LogCount(), 2*lines)
	checkExactlyOnceNoBackups(t, f, readCRIFiles(t, a.logDir), lines)
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
	const queueMiB = collectorconfig.MinDiskQueueMiB
	f := newFixture(t, func(c *collectorconfig.Config) {
		c.Signals = []collectorconfig.Signal{collectorconfig.Logs}
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
