// Package clustertest proves the node proxy, its RBAC and its controllers
// against a real kube-apiserver (e2e/cluster, apiserver-only): real
// TokenRequest and TokenReview with audiences, real RBAC decisions, real
// nodes/proxy forwarding to kubelet endpoints served by the test.
package clustertest

import (
	"os"
	"testing"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
)

func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }
