package injector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// TestTheAppIsNotGatedOnTheCollector: a native sidecar's startup probe holds
// back the app until it passes, and its readiness probe is part of the
// pod's Ready condition; a collector that cannot start or is unwell must do
// neither. Only a liveness probe, patient enough for a slow start and a
// busy collector, restarts one that hangs.
func TestTheAppIsNotGatedOnTheCollector(t *testing.T) {
	for _, native := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.NativeSidecars = native
		res := Mutate(fargatePod("", "", nil), cfg, nil)
		if !res.Injected {
			t.Fatalf("native=%v: not injected: %v", native, res.Warnings)
		}
		c := collectorOf(t, res.Pod)
		if c.StartupProbe != nil {
			t.Errorf("native=%v: the collector has a startup probe, which would hold back the app: %+v", native, c.StartupProbe)
		}
		if c.ReadinessProbe != nil {
			t.Errorf("native=%v: the collector has a readiness probe, which would take the app out of its Services: %+v", native, c.ReadinessProbe)
		}
		lp := c.LivenessProbe
		if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Port.IntVal != cfg.Collector.HealthCheckPort {
			t.Fatalf("native=%v: want a liveness probe on health_check :%d, got %+v", native, cfg.Collector.HealthCheckPort, lp)
		}
		if first := lp.InitialDelaySeconds + lp.PeriodSeconds*lp.FailureThreshold; first < 60 {
			t.Errorf("native=%v: a collector that never answers is restarted after %ds: too hasty for a slow start", native, first)
		}
		if hang := lp.PeriodSeconds * lp.FailureThreshold; hang < 60 {
			t.Errorf("native=%v: a collector that stops answering is restarted after %ds: too hasty for a busy one", native, hang)
		}
		if lp.TimeoutSeconds < 5 {
			t.Errorf("native=%v: a %ds probe timeout fails a collector busy with a burst", native, lp.TimeoutSeconds)
		}
		for _, ic := range res.Pod.Spec.InitContainers {
			if ic.Name != CollectorContainerName && (ic.StartupProbe != nil || ic.ReadinessProbe != nil) {
				t.Errorf("injected init container %s has a probe", ic.Name)
			}
		}
	}
}

// TestCollectorShutdownDelay: a collector that is a regular container gets
// SIGTERM with the app and has a preStop sleep (no shell in its image),
// within the pod's grace period, where the API server knows the action. A
// native sidecar gets SIGTERM only once the app has exited and has none: its
// drain does the work, and a sleep would only make every Job pod last longer.
func TestCollectorShutdownDelay(t *testing.T) {
	grace := func(s int64) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = &s }
	}
	regular := func(c *Config) { c.NativeSidecars = false }
	for _, tt := range []struct {
		name  string
		pod   func(*corev1.Pod)
		cfg   func(*Config)
		sleep int64 // 0: no preStop hook
		drain time.Duration
		// hardStop is FARGATE_OTEL_SHUTDOWN_TIMEOUT: the grace period
		// after the sleep less 2s, at least the drain and 1s, at most the
		// drain and 10s.
		hardStop string
	}{
		{name: "native sidecar", sleep: 0, drain: 20 * time.Second, hardStop: "28s"},
		{name: "native sidecar, long grace period: a hang is not waited out", pod: grace(3600), sleep: 0, drain: 20 * time.Second, hardStop: "30s"},
		{name: "native sidecar, short grace period", pod: grace(10), sleep: 0, drain: 5 * time.Second, hardStop: "8s"},
		{name: "regular container", cfg: regular, sleep: 5, drain: 20 * time.Second, hardStop: "23s"},
		{name: "regular container, rounded up to whole seconds", cfg: func(c *Config) {
			regular(c)
			c.Collector.ShutdownDelay = metav1.Duration{Duration: 1500 * time.Millisecond}
		}, sleep: 2, drain: 20 * time.Second, hardStop: "26s"},
		{name: "regular container, sleep and drain share the grace period", cfg: regular, pod: grace(15), sleep: 5, drain: 5 * time.Second, hardStop: "8s"},
		{name: "regular container, capped by the grace period", cfg: regular, pod: grace(3), sleep: 3, drain: time.Second, hardStop: "2s"},
		{name: "a grace period of 0 leaves no room", cfg: regular, pod: grace(0), sleep: 0, drain: time.Second, hardStop: "2s"},
		{name: "turned off", cfg: func(c *Config) { regular(c); c.Collector.ShutdownDelay = metav1.Duration{} }, sleep: 0, drain: 20 * time.Second, hardStop: "28s"},
		{name: "API server without the sleep action", cfg: func(c *Config) { regular(c); c.SleepAction = false }, sleep: 0, drain: 20 * time.Second, hardStop: "28s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := fargatePod("", "", nil)
			if tt.pod != nil {
				tt.pod(pod)
			}
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			res := Mutate(pod, cfg, nil)
			if !res.Injected {
				t.Fatalf("not injected: %v", res.Warnings)
			}
			c := collectorOf(t, res.Pod)
			lc := c.Lifecycle
			switch {
			case tt.sleep == 0 && lc != nil:
				t.Fatalf("want no lifecycle hook, got %+v", lc)
			case tt.sleep == 0:
			case lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil:
				t.Fatalf("want a preStop sleep of %ds, got %+v", tt.sleep, lc)
			case lc.PreStop.Sleep.Seconds != tt.sleep || lc.PreStop.Exec != nil || lc.PreStop.HTTPGet != nil || lc.PostStart != nil:
				t.Fatalf("want only a preStop sleep of %ds, got %+v", tt.sleep, lc)
			}
			want := fmt.Sprintf("drain:\n    timeout: %s\n", tt.drain)
			if got := collectorYAML(t, res.Pod); !strings.Contains(got, want) {
				t.Errorf("want the collector config to have %q:\n%s", want, got)
			}
			if got := envValue(c, ShutdownTimeoutEnv); got != tt.hardStop {
				t.Errorf("%s=%q, want %q", ShutdownTimeoutEnv, got, tt.hardStop)
			}
		})
	}
}

// TestTheCollectorStaysUpInItsPod: the sidecar is told to survive its own
// failures (the binary then never exits but on SIGTERM) and where to
// answer the liveness probe meanwhile: the probe's port.
func TestTheCollectorStaysUpInItsPod(t *testing.T) {
	for _, native := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.NativeSidecars = native
		cfg.Collector.HealthCheckPort = 13999
		res := Mutate(fargatePod("", "", nil), cfg, nil)
		if !res.Injected {
			t.Fatalf("native=%v: not injected: %v", native, res.Warnings)
		}
		c := collectorOf(t, res.Pod)
		if got := envValue(c, sidecarconfig.SidecarEnvVar); got != "true" {
			t.Errorf("native=%v: %s=%q, want true", native, sidecarconfig.SidecarEnvVar, got)
		}
		if got := envValue(c, sidecarconfig.HealthEndpointEnvVar); got != ":13999" {
			t.Errorf("native=%v: %s=%q, want :13999 (the liveness probe's port)", native, sidecarconfig.HealthEndpointEnvVar, got)
		}
		if c.LivenessProbe.HTTPGet.Port.IntVal != 13999 {
			t.Errorf("native=%v: the liveness probe is on port %d", native, c.LivenessProbe.HTTPGet.Port.IntVal)
		}
	}
}

// TestDiskQueuesFollowTheLogsVolume: the exporters' queues on disk get an
// eighth of the logs volume, at least what they need, and a warning when
// that no longer leaves the volume room.
func TestDiskQueuesFollowTheLogsVolume(t *testing.T) {
	for _, tt := range []struct {
		volume string
		want   int
		warn   bool
	}{
		{"256Mi", 32, false},
		{"1Gi", 128, false},
		{"128Mi", 24, false}, // three queues of 8 MiB: more than an eighth, within a quarter
		{"64Mi", 24, true},
	} {
		t.Run(tt.volume, func(t *testing.T) {
			pod := fargatePod("", "", map[string]string{annotations.LogsVolumeSize: tt.volume})
			cc, warns, err := CollectorConfig(pod, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if cc.DiskQueueMiB != tt.want {
				t.Errorf("DiskQueueMiB %d, want %d", cc.DiskQueueMiB, tt.want)
			}
			warned := strings.Contains(strings.Join(warns, "\n"), "small for the collector's queues on disk")
			if warned != tt.warn {
				t.Errorf("warned %v, want %v: %q", warned, tt.warn, warns)
			}
			res := Mutate(pod, DefaultConfig(), nil)
			if !res.Injected {
				t.Fatalf("not injected: %v", res.Warnings)
			}
		})
	}
}
