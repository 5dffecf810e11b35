package follow

import (
	"encoding/json"
	"fmt"
)

// The parts of the kubelet's /pods answer (a v1 PodList) that the follower
// reads; the node proxy filters it to the caller's own pod.
type podList struct {
	Items []pod `json:"items"`
}

type pod struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running,omitempty"`
	Terminated *struct {
		ContainerID string `json:"containerID"`
		ExitCode    int    `json:"exitCode"`
	} `json:"terminated,omitempty"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting,omitempty"`
}

// instance is one run of a container: the kubelet names its log file
// <restart>.log, restart being the restartCount it had while it was the
// newest run.
type instance struct {
	restart int
	id      string // the runtime's container ID
	running bool
}

// status is what the follower needs to know about one container.
type status struct {
	latest      instance // the newest run: what containerLogs serves without previous
	hasLatest   bool
	previous    instance // what containerLogs serves with previous=true
	hasPrevious bool
	waiting     string // the reason it waits, if it does
}

// parseStatus finds the container in the kubelet's PodList of our pod.
func parseStatus(body []byte, namespace, podName, uid, container string) (status, error) {
	var list podList
	if err := json.Unmarshal(body, &list); err != nil {
		return status{}, fmt.Errorf("the node proxy's /pods answer is not a pod list: %w", err)
	}
	for _, p := range list.Items {
		if p.Metadata.UID != uid && (p.Metadata.Namespace != namespace || p.Metadata.Name != podName) {
			continue
		}
		if uid != "" && p.Metadata.UID != "" && p.Metadata.UID != uid {
			continue // a pod of the same name that is not ours (an old one)
		}
		for _, list := range [][]containerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
			for _, cs := range list {
				if cs.Name == container {
					return statusOf(cs), nil
				}
			}
		}
		return status{}, fmt.Errorf("pod %s/%s has no container %q yet: check --containers", namespace, podName, container)
	}
	return status{}, fmt.Errorf("the node proxy's /pods answer does not list pod %s/%s (uid %s): check --namespace, --pod, --pod-uid and --node", namespace, podName, uid)
}

// statusOf reads a container status the way the kubelet's
// validateContainerLogStatus picks the run it serves: without previous, the
// newest run (its containerID, running, terminated, or waiting after it died,
// when lastState is the newest run itself); with previous, lastState's run,
// which is the run before the newest one while the newest runs, and the
// newest itself while it waits to be restarted.
func statusOf(cs containerStatus) status {
	var st status
	if cs.State.Waiting != nil {
		st.waiting = cs.State.Waiting.Reason
	}
	id := cs.ContainerID
	if id == "" && cs.State.Terminated != nil {
		id = cs.State.Terminated.ContainerID
	}
	last := ""
	if cs.LastState.Terminated != nil {
		last = cs.LastState.Terminated.ContainerID
	}
	if id == "" && cs.State.Waiting != nil && last != "" {
		id = last // waiting after a run whose status names no ID of its own
	}
	if id != "" {
		st.latest = instance{restart: cs.RestartCount, id: id, running: cs.State.Running != nil}
		st.hasLatest = true
	}
	if last != "" {
		st.hasPrevious = true
		st.previous = instance{restart: cs.RestartCount - 1, id: last}
		if last == id {
			st.previous.restart = cs.RestartCount
		}
	}
	return st
}
