package agent

import (
	"fmt"
	"os"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"
)

// Env vars of the sidecar that the agent reads (docs/fleet-protocol.md).
const (
	EndpointEnv        = "FARGATE_OTEL_FLEET_ENDPOINT"
	TokenFileEnv       = "FARGATE_OTEL_FLEET_TOKEN_FILE"
	CAFileEnv          = "FARGATE_OTEL_FLEET_CA_FILE"
	HeartbeatEnv       = "FARGATE_OTEL_FLEET_HEARTBEAT"
	InjectorVersionEnv = "FARGATE_OTEL_INJECTOR_VERSION"
	ExportersSourceEnv = "FARGATE_OTEL_EXPORTERS_SOURCE"

	DefaultTokenFile = "/var/run/secrets/fargate-otel/fleet/token"
	DefaultCAFile    = "/var/run/secrets/fargate-otel/fleet/ca.crt"
)

// ServiceName is a sidecar agent's service.name; GatewayServiceName a
// gateway replica's.
const (
	ServiceName        = "fargate-otel-collector"
	GatewayServiceName = "fargate-otel-gateway"
)

// KindAttribute is the identifying attribute that says what an agent runs
// beside: KindSidecar (a pod's collector sidecar, which applies the fleet's
// live settings) or KindGateway (a replica of the gateway Deployment, whose
// config is the chart's). The fleet server does not take the agent's word
// for it: it checks the kind against the service account of the agent's
// token (docs/fleet-protocol.md).
const (
	KindAttribute = "fargate-otel.kind"
	KindSidecar   = "sidecar"
	KindGateway   = "gateway"
)

// Identity is what the agent says about its pod.
type Identity struct {
	// Kind is KindSidecar or KindGateway ("" is KindSidecar).
	Kind                             string
	PodName, PodUID, Namespace, Node string
	// Cluster is k8s.cluster.name, "" when the pod's settings have none.
	Cluster string
	// Version is the collector binary's version.
	Version         string
	InjectorVersion string
	ExportersSource string
	// BootstrapHash names the config the pod's own settings render (the
	// hash in its fargate-otel.io/status annotation).
	BootstrapHash string
}

// IdentityFromEnv reads a sidecar's identity from the Downward API and the
// injector's env vars; cluster, version and bootstrapHash come from the
// binary and the pod's settings.
func IdentityFromEnv(cluster, version, bootstrapHash string) Identity {
	return Identity{
		Kind:            KindSidecar,
		PodName:         os.Getenv("POD_NAME"),
		PodUID:          os.Getenv("POD_UID"),
		Namespace:       os.Getenv("POD_NAMESPACE"),
		Node:            os.Getenv("NODE_NAME"),
		Cluster:         cluster,
		Version:         version,
		InjectorVersion: os.Getenv(InjectorVersionEnv),
		ExportersSource: os.Getenv(ExportersSourceEnv),
		BootstrapHash:   bootstrapHash,
	}
}

// GatewayIdentityFromEnv reads a gateway replica's identity from the
// Downward API (the chart sets POD_NAME, POD_UID, POD_NAMESPACE, NODE_NAME);
// cluster may be "".
func GatewayIdentityFromEnv(cluster, version string) Identity {
	return Identity{
		Kind:      KindGateway,
		PodName:   os.Getenv("POD_NAME"),
		PodUID:    os.Getenv("POD_UID"),
		Namespace: os.Getenv("POD_NAMESPACE"),
		Node:      os.Getenv("NODE_NAME"),
		Cluster:   cluster,
		Version:   version,
	}
}

// kind is id.Kind, KindSidecar when unset.
func (id Identity) kind() string {
	if id.Kind == "" {
		return KindSidecar
	}
	return id.Kind
}

// InstanceUID is the pod's uid as the 16 bytes the fleet server expects:
// the server refuses an agent whose instance_uid is not its token's pod.
func (id Identity) InstanceUID() (types.InstanceUid, error) {
	u, err := uuid.Parse(id.PodUID)
	if err != nil {
		return types.InstanceUid{}, fmt.Errorf("POD_UID %q is not a pod uid (a UUID from the Downward API, metadata.uid): %w", id.PodUID, err)
	}
	return types.InstanceUid(u), nil
}

// Description is the AgentDescription; configHash names the config the
// collector runs now.
func (id Identity) Description(configHash string) *protobufs.AgentDescription {
	service := ServiceName
	if id.kind() == KindGateway {
		service = GatewayServiceName
	}
	d := &protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{
			kv("service.name", service),
			kv("service.instance.id", id.PodUID),
			kv("service.version", id.Version),
			kv("k8s.pod.name", id.PodName),
			kv("k8s.pod.uid", id.PodUID),
			kv("k8s.namespace.name", id.Namespace),
			kv(KindAttribute, id.kind()),
		},
		NonIdentifyingAttributes: []*protobufs.KeyValue{
			kv("k8s.node.name", id.Node),
		},
	}
	if id.Cluster != "" {
		d.NonIdentifyingAttributes = append(d.NonIdentifyingAttributes, kv("k8s.cluster.name", id.Cluster))
	}
	if id.kind() == KindSidecar {
		// What the injector made of the pod: a gateway has no injector, no
		// exporters source and no pod settings.
		d.NonIdentifyingAttributes = append(d.NonIdentifyingAttributes,
			kv("fargate-otel.injector.version", id.InjectorVersion),
			kv("fargate-otel.exporters.source", id.ExportersSource),
			kv("fargate-otel.bootstrap.config_hash", id.BootstrapHash),
		)
	}
	d.NonIdentifyingAttributes = append(d.NonIdentifyingAttributes, kv("fargate-otel.config_hash", configHash))
	return d
}

func kv(key, value string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: key, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: value}}}
}
