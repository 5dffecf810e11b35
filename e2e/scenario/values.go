package scenario

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// InjectorDeployment and NodeProxyDeployment are the chart's Deployments in
// ReleaseNamespace.
const (
	InjectorDeployment  = "fargate-otel-injector"
	NodeProxyDeployment = "fargate-otel-nodeproxy"
	// NodeProxyServiceAccount is the only holder of nodes/proxy in mode proxy.
	NodeProxyServiceAccount = "fargate-otel-nodeproxy"
)

// ValuesOptions are what a cluster without Fargate and with a local gateway
// needs from the chart.
type ValuesOptions struct {
	Images ProductImages
	// PullPolicy of the product's images (IfNotPresent for imported ones).
	PullPolicy  corev1.PullPolicy
	ClusterName string
	// SinkEndpoint is the gateway (host:port, OTLP/gRPC without TLS).
	SinkEndpoint string
	// InsecureRegistries are read over plain HTTP by the injector.
	InsecureRegistries []string
	// AllowDirect lets namespaces ask for kubelet stats mode direct.
	AllowDirect bool
	// KubeletStatsEvery is the kubelet_stats interval (default the chart's).
	KubeletStatsEvery time.Duration
	// Gateway installs the chart's gateway tier (GatewayValues): the
	// sidecars export to it, and it to the sink.
	Gateway bool
}

// ChartValues are the Helm values for opts: every pod of an opted-in
// namespace injected (scope all: there is no Fargate here), the sink as the
// only exporter.
func ChartValues(o ValuesOptions) map[string]any {
	pull := o.PullPolicy
	if pull == "" {
		pull = corev1.PullIfNotPresent
	}
	image := func(ref string) map[string]any {
		repo, tag := splitRef(ref)
		return map[string]any{"repository": repo, "tag": tag}
	}
	kubeletStats := map[string]any{"mode": "proxy"}
	if o.AllowDirect {
		// A namespace then chooses direct with its label KubeletStatsLabel.
		kubeletStats["allowedModes"] = []string{"proxy", "direct", "off"}
	}
	if o.KubeletStatsEvery > 0 {
		kubeletStats["interval"] = o.KubeletStatsEvery.String()
	}
	insecure := o.InsecureRegistries
	if insecure == nil {
		insecure = []string{}
	}
	values := map[string]any{
		"clusterName": o.ClusterName,
		"scope":       "all",
		"images": map[string]any{
			"pullPolicy": string(pull),
			"tee":        image(o.Images.Tee),
			"collector":  image(o.Images.Collector),
			"injector":   image(o.Images.Injector),
			"nodeproxy":  image(o.Images.NodeProxy),
			"fleet":      image(o.Images.Fleet),
		},
		"exporters": []map[string]any{{
			"id":     "otlp_grpc/sink",
			"config": map[string]any{"endpoint": o.SinkEndpoint, "tls": map[string]any{"insecure": true}},
		}},
		"kubeletStats": kubeletStats,
		"imageLookup":  map[string]any{"insecureRegistries": insecure},
	}
	if o.Gateway {
		return GatewayValues(values, o.Images.Gateway, o.SinkEndpoint)
	}
	return values
}

// GatewayDeployment is the chart's gateway Deployment (and HPA, PDB,
// Service) in ReleaseNamespace.
const GatewayDeployment = "fargate-otel-gateway"

// GatewayReplicas is what the HPA keeps at least (there is no
// metrics-server in the local cluster: it never scales further).
const GatewayReplicas = 2

// GatewayValues returns values with the chart's gateway tier: two replicas
// at least (the HPA's floor), small requests (one node), every trace kept
// after a short decision wait (so that the demo's trace shows), the sink as
// its OTLP destination, and no `exporters` of the sidecars', so that they
// export to the gateway, as with a user's values.
func GatewayValues(values map[string]any, image, sinkEndpoint string) map[string]any {
	out := map[string]any{}
	for k, v := range values {
		if k != "exporters" {
			out[k] = v
		}
	}
	repo, tag := splitRef(image)
	out["gateway"] = map[string]any{
		"enabled":     true,
		"image":       map[string]any{"repository": repo, "tag": tag},
		"autoscaling": map[string]any{"minReplicas": GatewayReplicas, "maxReplicas": 4},
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "50m", "memory": "128Mi"},
			"limits":   map[string]any{"memory": "512Mi"},
		},
		"tailSampling": map[string]any{
			"decisionWait": "2s",
			"policies":     []map[string]any{{"name": "all", "type": "always_sample"}},
		},
	}
	out["destinations"] = map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": sinkEndpoint, "insecure": true}}
	return out
}

// splitRef splits an image reference into repository and tag.
func splitRef(ref string) (repo, tag string) {
	slash := strings.LastIndexByte(ref, '/')
	colon := strings.LastIndexByte(ref, ':')
	if colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, "latest"
}
