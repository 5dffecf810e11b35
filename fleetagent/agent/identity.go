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

// ServiceName is the agent's service.name.
const ServiceName = "fargate-otel-collector"

// Identity is what the agent says about its sidecar.
type Identity struct {
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

// IdentityFromEnv reads the pod's identity from the Downward API and the
// injector's env vars; cluster, version and bootstrapHash come from the
// binary and the pod's settings.
func IdentityFromEnv(cluster, version, bootstrapHash string) Identity {
	return Identity{
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
	d := &protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{
			kv("service.name", ServiceName),
			kv("service.instance.id", id.PodUID),
			kv("service.version", id.Version),
			kv("k8s.pod.name", id.PodName),
			kv("k8s.pod.uid", id.PodUID),
			kv("k8s.namespace.name", id.Namespace),
		},
		NonIdentifyingAttributes: []*protobufs.KeyValue{
			kv("k8s.node.name", id.Node),
		},
	}
	if id.Cluster != "" {
		d.NonIdentifyingAttributes = append(d.NonIdentifyingAttributes, kv("k8s.cluster.name", id.Cluster))
	}
	d.NonIdentifyingAttributes = append(d.NonIdentifyingAttributes,
		kv("fargate-otel.injector.version", id.InjectorVersion),
		kv("fargate-otel.exporters.source", id.ExportersSource),
		kv("fargate-otel.bootstrap.config_hash", id.BootstrapHash),
		kv("fargate-otel.config_hash", configHash),
	)
	return d
}

func kv(key, value string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: key, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: value}}}
}
