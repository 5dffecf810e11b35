package main

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/fargate-otel/fargate-otel/injector"
)

// TestFollowsWhatCannotBeWrapped: offline, a container without a command
// gets the api log source, as the webhook gives it when a look-up fails:
// the follower reads its log from the kubelet, the report and the summary
// say so, --strict passes, and a hint says that its command would have it
// wrapped; --reinject with the command wraps it and takes the follower out.
func TestFollowsWhatCannotBeWrapped(t *testing.T) {
	r := runCLI(t, nil, "inject", "-f", apiFile, "--strict")
	if r.code != 0 {
		t.Fatalf("exit %d (a followed container is captured):\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"deployment/api injected (logs of [metrics-proxy]); from the kubelet (log source api): api\n",
		"warning: fargate-otel: container api is not wrapped: it has no command",
		"meanwhile its logs are read from the kubelet (log source api: stdout and stderr merged, as stdout)",
		"hint: give such containers their command with --command CONTAINER=JSON",
		"2 containers: 1 wrapped, 1 captured by another log source, 0 not captured, 0 left out",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stderr)
		}
	}
	var d appsv1.Deployment
	strict(t, r.stdout, &d)
	var names []string
	for _, c := range d.Spec.Template.Spec.InitContainers {
		names = append(names, c.Name)
		if c.Name == injector.FollowerContainerName && !slices.Contains(c.Command, "--containers=api") {
			t.Errorf("the follower runs %q", c.Command)
		}
	}
	if want := []string{injector.InitContainerName, injector.CollectorContainerName, injector.FollowerContainerName}; !slices.Equal(names, want) {
		t.Errorf("init containers %v, want %v", names, want)
	}

	// The command known now: injected anew, api is wrapped, no follower.
	re := runCLI(t, []byte(r.stdout), "inject", "-f", "-", "--reinject", "--command", `api=["/app/api"]`)
	if re.code != 0 || !strings.Contains(re.stderr, "deployment/api injected anew (logs of [api metrics-proxy])\n") {
		t.Fatalf("--reinject: exit %d:\n%s", re.code, re.stderr)
	}
	strict(t, re.stdout, &d)
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if c.Name == injector.FollowerContainerName {
			t.Errorf("the follower is still there after --reinject with the command")
		}
	}
}
