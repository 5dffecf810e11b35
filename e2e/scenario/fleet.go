package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// FleetDeployment is the chart's fleet server Deployment in
// ReleaseNamespace.
const FleetDeployment = "fargate-otel-fleet"

// FleetCLI runs `fargate-otel fleet` as a user does, with a kubeconfig: it
// port-forwards to a fleet server pod itself.
type FleetCLI struct {
	Bin        string
	Kubeconfig string
}

// Fleet runs `fargate-otel fleet -o json` with args (filters) and decodes
// what it prints; the error carries what it said on stderr.
func (c FleetCLI) Fleet(ctx context.Context, args ...string) (api.Fleet, error) {
	out, stderr, err := c.run(ctx, append([]string{"-o", "json"}, args...)...)
	if err != nil {
		return api.Fleet{}, err
	}
	var f api.Fleet
	if err := json.Unmarshal(out, &f); err != nil {
		return api.Fleet{}, fmt.Errorf("fargate-otel fleet -o json printed what is not the fleet's JSON (%w): %s%s", err, out, stderr)
	}
	return f, nil
}

// Table runs `fargate-otel fleet` with args and returns its table.
func (c FleetCLI) Table(ctx context.Context, args ...string) (string, error) {
	out, _, err := c.run(ctx, args...)
	return string(out), err
}

func (c FleetCLI) run(ctx context.Context, args ...string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := append([]string{"fleet", "--kubeconfig", c.Kubeconfig, "--timeout=20s"}, args...)
	cmd := exec.CommandContext(ctx, c.Bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, stderr.String(), fmt.Errorf("fargate-otel %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), stderr.String(), nil
}

// OTLPExporter is an OTLP/gRPC exporter to endpoint (host:port) without
// TLS, queued on the pod's logs volume as the chart's default exporter is.
func OTLPExporter(id, endpoint string) map[string]any {
	return map[string]any{"id": id, "config": map[string]any{
		"endpoint":      endpoint,
		"tls":           map[string]any{"insecure": true},
		"sending_queue": map[string]any{"storage": "file_storage"},
	}}
}

// ExportersConfigMap is a namespace's exporters ConfigMap: the list, in
// the format of the chart's `exporters` values, under the key that the
// annotation fargate-otel.io/exporters: <name> reads.
func ExportersConfigMap(namespace, name string, exporters ...map[string]any) (*corev1.ConfigMap, error) {
	data, err := yaml.Marshal(exporters)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Data:       map[string]string{annotations.DefaultExportersKey: string(data)},
	}, nil
}

// ApplyConfigMap creates the ConfigMap, or replaces its data.
func ApplyConfigMap(ctx context.Context, cs kubernetes.Interface, cm *corev1.ConfigMap) error {
	cms := cs.CoreV1().ConfigMaps(cm.Namespace)
	_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return wrap("create configmap "+cm.Namespace+"/"+cm.Name, err)
	}
	cur, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Data = cm.Data
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return wrap("update configmap "+cm.Namespace+"/"+cm.Name, err)
}
