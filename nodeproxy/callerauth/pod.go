package callerauth

import (
	"errors"
	"fmt"
)

// Pod is what the proxy knows about a pod: just enough to check a caller.
type Pod struct {
	Namespace      string
	Name           string
	UID            string
	NodeName       string
	ServiceAccount string
	// Finished is true for a pod in phase Succeeded or Failed: its token
	// still verifies for a while, but it has no stats to read.
	Finished bool
	// Containers are the names of its regular and init containers (native
	// sidecars included), in spec order: the containers whose logs the pod
	// may read.
	Containers []string
}

// ErrForbidden is wrapped by errors that mean "this caller may not read
// this node": the token is genuine but asks for more than its own node.
var ErrForbidden = errors.New("forbidden")

// ErrPodGone is wrapped (with ErrForbidden) when the token's pod no longer
// exists: the cached review of that token should be dropped.
var ErrPodGone = errors.New("pod gone")

// CheckPod decides whether caller, whose pod is pod (nil when the pod does
// not exist), may read the kubelet of node.
func CheckPod(c Caller, pod *Pod, node string) error {
	who := c.Namespace + "/" + c.PodName
	if pod == nil {
		return fmt.Errorf("%w: %w: pod %s, which the token was issued for, does not exist", ErrForbidden, ErrPodGone, who)
	}
	if pod.Namespace != c.Namespace || pod.Name != c.PodName {
		return fmt.Errorf("%w: looked up pod %s/%s for token of pod %s", ErrForbidden, pod.Namespace, pod.Name, who)
	}
	if pod.UID != c.PodUID {
		return fmt.Errorf("%w: %w: pod %s was deleted and re-created (uid %s, token issued for uid %s)", ErrForbidden, ErrPodGone, who, pod.UID, c.PodUID)
	}
	if pod.ServiceAccount != c.ServiceAccount {
		return fmt.Errorf("%w: pod %s runs as service account %q, token is for %q", ErrForbidden, who, pod.ServiceAccount, c.ServiceAccount)
	}
	if pod.Finished {
		return fmt.Errorf("%w: pod %s has finished", ErrForbidden, who)
	}
	if pod.NodeName == "" {
		return fmt.Errorf("%w: pod %s is not scheduled on a node yet", ErrForbidden, who)
	}
	if node != pod.NodeName {
		return fmt.Errorf("%w: pod %s runs on node %q and may read only that node's stats, not %q: set the endpoint from the Downward API (spec.nodeName)", ErrForbidden, who, pod.NodeName, node)
	}
	if c.NodeName != "" && c.NodeName != pod.NodeName {
		return fmt.Errorf("%w: the token of pod %s was issued on node %q, the pod runs on %q", ErrForbidden, who, c.NodeName, pod.NodeName)
	}
	return nil
}
