package injector

import (
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestFleetOnlyInTheCollector: the fleet's token is mounted into the
// collector and nowhere else, and without a fleet endpoint nothing of the
// fleet is added.
func TestFleetOnlyInTheCollector(t *testing.T) {
	pod := readPod(t, filepath.Join("testdata", "mutate", "several-containers.yaml"))
	for _, on := range []bool{true, false} {
		cfg := DefaultConfig()
		if on {
			withFleet(&cfg)
		}
		res := Mutate(pod, cfg, nil)
		mounts := 0
		visit(res.Pod, func(c *corev1.Container, _ bool) {
			for _, m := range c.VolumeMounts {
				if m.Name != FleetVolumeName {
					continue
				}
				mounts++
				if c.Name != CollectorContainerName || !m.ReadOnly {
					t.Errorf("container %s mounts the fleet volume (read-only %v)", c.Name, m.ReadOnly)
				}
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "FARGATE_OTEL_FLEET_") && c.Name != CollectorContainerName {
					t.Errorf("container %s has %s", c.Name, e.Name)
				}
			}
		})
		if want := map[bool]int{true: 1, false: 0}[on]; mounts != want {
			t.Errorf("fleet on=%v: %d mounts of the fleet volume, want %d", on, mounts, want)
		}
	}
}

func TestFleetEndpointMustBeTLS(t *testing.T) {
	for _, ep := range []string{"ws://fleet:4320/v1/opamp", "https://fleet", "wss://"} {
		cfg := DefaultConfig()
		cfg.Fleet.Endpoint = ep
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "wss://") {
			t.Errorf("endpoint %q: %v", ep, err)
		}
	}
}
