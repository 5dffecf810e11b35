package injector

import (
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/internal/version"
)

// The fleet (docs/fleet-protocol.md): with an endpoint set, the collector's
// supervisor is an OpAMP agent of the fleet server. It authenticates with a
// projected token of the fleet's own audience and verifies the server with
// the CA ConfigMap the injector publishes in opted-in namespaces, both in a
// volume mounted into the collector only: the app never sees the token.

// Env vars of the collector sidecar for its fleet agent.
const (
	FleetEndpointEnv        = "FARGATE_OTEL_FLEET_ENDPOINT"
	FleetTokenFileEnv       = "FARGATE_OTEL_FLEET_TOKEN_FILE"
	FleetCAFileEnv          = "FARGATE_OTEL_FLEET_CA_FILE"
	InjectorVersionEnv      = "FARGATE_OTEL_INJECTOR_VERSION"
	ExportersSourceEnv      = "FARGATE_OTEL_EXPORTERS_SOURCE"
	FleetVolumeName         = "fargate-otel-fleet"
	FleetMountPath          = "/var/run/secrets/fargate-otel/fleet"
	DefaultFleetAudience    = "fargate-otel-fleet"
	fleetTokenPath          = "token"
	fleetCAPath             = "ca.crt"
	exportersSourceCluster  = "cluster"
	exportersSourceCMPrefix = "configmap:"
)

// FleetSettings connect sidecars to the fleet server.
type FleetSettings struct {
	// Endpoint is the fleet server's wss:// URL; empty: no fleet agent.
	Endpoint string `json:"endpoint,omitempty"`
	// Audience of the projected token (default fargate-otel-fleet).
	Audience string `json:"audience,omitempty"`
	// CAConfigMap verifies the server (default: the node proxy's CA
	// ConfigMap, which holds the same CA).
	CAConfigMap string `json:"caConfigMap,omitempty"`
}

func (f FleetSettings) validate() error {
	if f.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(f.Endpoint)
	if err != nil || u.Scheme != "wss" || u.Host == "" {
		return fmt.Errorf("fleet.endpoint %q must be a wss:// URL (OpAMP over TLS), e.g. wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp", f.Endpoint)
	}
	return nil
}

// exportersSource is FARGATE_OTEL_EXPORTERS_SOURCE: the ConfigMap the pod
// names (in its own namespace), else the cluster's exporters.
func exportersSource(ref *annotations.ConfigMapRef) string {
	if ref == nil {
		return exportersSourceCluster
	}
	return exportersSourceCMPrefix + ref.Name + "/" + ref.Key
}

// fleetAccess adds the agent's env vars, token and CA to the collector.
func fleetAccess(pod *corev1.Pod, cfg Config, ref *annotations.ConfigMapRef, collector *corev1.Container) {
	f := cfg.Fleet
	if f.Endpoint == "" {
		return
	}
	aud := f.Audience
	if aud == "" {
		aud = DefaultFleetAudience
	}
	ca := f.CAConfigMap
	if ca == "" {
		ca = cfg.KubeletStats.NodeProxy.CAConfigMap
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: FleetVolumeName, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: aud, ExpirationSeconds: ptr(int64(tokenExpirationSeconds)), Path: fleetTokenPath}},
			// Optional: a namespace where it is not published yet still
			// starts its pods; the agent cannot connect until it is.
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: ca},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: fleetCAPath}},
				Optional:             ptr(true),
			}},
		}},
	}})
	collector.VolumeMounts = append(collector.VolumeMounts, corev1.VolumeMount{Name: FleetVolumeName, MountPath: FleetMountPath, ReadOnly: true})
	collector.Env = append(collector.Env,
		corev1.EnvVar{Name: FleetEndpointEnv, Value: f.Endpoint},
		corev1.EnvVar{Name: FleetTokenFileEnv, Value: FleetMountPath + "/" + fleetTokenPath},
		corev1.EnvVar{Name: FleetCAFileEnv, Value: FleetMountPath + "/" + fleetCAPath},
		corev1.EnvVar{Name: InjectorVersionEnv, Value: version.Version},
		corev1.EnvVar{Name: ExportersSourceEnv, Value: exportersSource(ref)},
	)
}
