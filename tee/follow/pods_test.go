package follow

import (
	"strings"
	"testing"
)

func TestStatusPicksTheRunsAsTheKubeletDoes(t *testing.T) {
	pod := func(status string) string {
		return `{"kind":"PodList","items":[{"metadata":{"name":"web","namespace":"ns","uid":"u1"},"status":{"containerStatuses":[` + status + `]}}]}`
	}
	for _, tc := range []struct {
		name   string
		status string
		want   status
		err    string
	}{{
		name:   "not started",
		status: `{"name":"app","restartCount":0,"state":{"waiting":{"reason":"ContainerCreating"}}}`,
		want:   status{waiting: "ContainerCreating"},
	}, {
		name:   "first run",
		status: `{"name":"app","restartCount":0,"containerID":"c://a","state":{"running":{}}}`,
		want:   status{latest: instance{0, "c://a", true}, hasLatest: true},
	}, {
		name:   "restarted: previous is the run before",
		status: `{"name":"app","restartCount":2,"containerID":"c://c","state":{"running":{}},"lastState":{"terminated":{"containerID":"c://b"}}}`,
		want:   status{latest: instance{2, "c://c", true}, hasLatest: true, previous: instance{1, "c://b", false}, hasPrevious: true},
	}, {
		name:   "crash loop: the newest run is waiting to restart, previous is itself",
		status: `{"name":"app","restartCount":3,"containerID":"c://d","state":{"waiting":{"reason":"CrashLoopBackOff"}},"lastState":{"terminated":{"containerID":"c://d"}}}`,
		want:   status{latest: instance{3, "c://d", false}, hasLatest: true, previous: instance{3, "c://d", false}, hasPrevious: true, waiting: "CrashLoopBackOff"},
	}, {
		name:   "terminated for good",
		status: `{"name":"app","restartCount":0,"containerID":"c://a","state":{"terminated":{"containerID":"c://a","exitCode":0}}}`,
		want:   status{latest: instance{0, "c://a", false}, hasLatest: true},
	}, {
		name:   "no such container",
		status: `{"name":"other","restartCount":0}`,
		err:    `has no container "app" yet`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(pod(tc.status)), "ns", "web", "u1", "app")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
	if _, err := parseStatus([]byte(pod(`{"name":"app"}`)), "ns", "web", "u2", "app"); err == nil || !strings.Contains(err.Error(), "does not list pod") {
		t.Errorf("another pod's uid: %v", err)
	}
	if _, err := parseStatus([]byte(`<html>`), "ns", "web", "u1", "app"); err == nil || !strings.Contains(err.Error(), "not a pod list") {
		t.Errorf("not JSON: %v", err)
	}
}
