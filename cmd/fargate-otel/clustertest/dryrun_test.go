// Package clustertest checks `fargate-otel inject` against a real
// kube-apiserver: its output of the corpus is accepted by a server-side
// dry run (`kubectl apply --server-side --dry-run=server`), the check the
// CLI's output was first held to.
package clustertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }

// TestServerSideDryRun applies the injected corpus, plain and with the
// commands of --commands, as a server-side dry run: the API server must
// accept every object (native sidecars, security contexts, resources,
// probes: what its validation and defaulting hold the injection to).
func TestServerSideDryRun(t *testing.T) {
	cli := gobuild.Binary(t, "FARGATE_OTEL_CLI", "./cmd/fargate-otel")
	cp := cluster.StartControlPlaneT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ns := range []string{"shop", "demo", "ingress-nginx", "monitoring"} {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Pods need their service account (no controller manager here).
		if _, err := cp.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("../testdata/corpus/[0-9]*")
	if err != nil || len(files) < 12 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	total := 0
	for _, file := range files {
		for _, extra := range [][]string{nil, {"--commands", "../testdata/corpus/commands.yaml"}} {
			args := append([]string{"inject", "-f", file, "-q"}, extra...)
			out, err := exec.Command(cli, args...).Output()
			if err != nil {
				t.Fatalf("%s %v: %v", file, extra, err)
			}
			apply := exec.CommandContext(ctx, cp.Binaries.Kubectl, "--kubeconfig", cp.Kubeconfig,
				"apply", "--server-side", "--dry-run=server", "--field-manager=fargate-otel-test", "-f", "-")
			apply.Stdin = bytes.NewReader(out)
			res, err := apply.CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: the API server refused the injected output: %v\n%s", filepath.Base(file), extra, err, res)
			}
			n := strings.Count(string(res), "serverside-applied (server dry run)")
			if n == 0 {
				t.Fatalf("%s: kubectl applied nothing:\n%s", file, res)
			}
			total += n
		}
	}
	t.Logf("%d objects accepted by the API server's server-side dry run", total)
}
