package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

func examplesDir(t testing.TB) string {
	return filepath.Join(filepath.Dir(filepath.Dir(chartDir(t))), "examples")
}

// TestExampleValues: every manifests/examples/values-*.yaml passes the
// schema, and the injector accepts the config file it gives.
func TestExampleValues(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir(t), "values-*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := runHelm(t, "template", release, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion, "--values", f)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := parse(out)
			if err != nil {
				t.Fatal(err)
			}
			config(t, objs)
		})
	}
}

// TestExampleNamespace: the example's exporters ConfigMap is one the
// injector reads, and its annotations are known ones.
func TestExampleNamespace(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(examplesDir(t), "namespace.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(string(data))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	objs.get(t, "ConfigMap", "team-exporters", &cm)
	specs, err := injector.ParseExporters([]byte(cm.Data[annotations.DefaultExportersKey]))
	if err != nil || len(specs) != 2 {
		t.Errorf("the example's exporters: %v, %v", specs, err)
	}
	dep := objs.find("Deployment", "web")
	ann, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "annotations")
	if _, warnings := annotations.Parse(ann); len(warnings) != 0 {
		t.Errorf("the example's annotations: %s", strings.Join(warnings, "; "))
	}
}
