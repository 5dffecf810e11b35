//go:build e2e

package product

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
)

// keepDiagnostics writes, for a failed run, what the test saw next to the
// component and pod logs that cluster.StartT keeps: the objects and events
// of every namespace, the chart's values and rendered manifests, and what
// the sink received.
func keepDiagnostics(t *testing.T, e *env) {
	if !t.Failed() || e.c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(cluster.ArtifactsDir(), t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep diagnostics: %v", err)
		return
	}
	write := func(name string, data []byte, err error) {
		if err != nil {
			data = append(data, []byte("\nerror: "+err.Error()+"\n")...)
		}
		_ = os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	out, err := e.c.Kubectl(ctx, "get", "all,events,configmaps,serviceaccounts,rolebindings,clusterrolebindings,mutatingwebhookconfigurations", "-A", "-o", "wide")
	write("objects.txt", out, err)
	out, err = e.c.Kubectl(ctx, "get", "pods", "-A", "-o", "yaml")
	write("pods.yaml", out, err)
	if e.values != nil {
		v, err := yaml.Marshal(e.values)
		write("values.yaml", v, err)
		rendered, err := e.helm.Template(ctx, e.values)
		write("chart-rendered.yaml", []byte(rendered), err)
	}
	if e.sink.Get != nil {
		s, err := e.sink.Summary(ctx)
		write("sink-summary.txt", []byte(s), err)
		b, err := e.sink.Get(ctx, "/logs", nil)
		write("sink-logs.json", b, err)
		b, err = e.sink.Get(ctx, "/metrics", nil)
		write("sink-metrics.json", b, err)
	}
	t.Logf("what the test saw is kept in %s", dir)
}
