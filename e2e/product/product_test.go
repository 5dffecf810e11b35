//go:build e2e

// Package product is the end-to-end test of fargate-otel as a new user meets
// it, on a real single-node Kubernetes (e2e/cluster): the project's images
// built by `make images` and imported, the chart installed with helm, then
// the eight points of issue 6, each a subtest:
//
//  1. an opted-in namespace with a Deployment whose pod spec has no command
//     (its image's ENTRYPOINT and CMD are read from a registry) and a Job;
//  2. the pods are injected (native sidecar, wrapped command) and Running,
//     and `kubectl logs` shows exactly what it shows without injection;
//  3. the OTLP sink (the gateway) gets the app's lines from both streams
//     with k8s.* attributes, kubelet stats through the node proxy and, in a
//     second namespace, in mode direct, and the app's trace;
//  4. the Job completes and its last lines arrive;
//  5. opted-out pods and pods of other namespaces are untouched;
//  6. with the injector scaled to zero, pods are still created;
//  7. the app's service account cannot get nodes/proxy in mode proxy;
//  8. `fargate-otel doctor` says healthy, and names the fault when the
//     webhook is down.
//
// Every wait is a poll with a deadline. A failed run keeps the component and
// pod logs, and what the test saw, under _artifacts/e2e/TestProduct/.
package product

import (
	"os"
	"testing"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
)

func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }
