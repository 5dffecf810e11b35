package injector

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// What the injector adds around the app: volumes, the init container, the
// security context of every injected container, and the changes to an app
// container.

const binVolumeSize = "16Mi"

func binVolume() corev1.Volume {
	size := resource.MustParse(binVolumeSize)
	return corev1.Volume{Name: BinVolumeName, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size},
	}}
}

func logsVolume(limit resource.Quantity) corev1.Volume {
	return corev1.Volume{Name: LogsVolumeName, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &limit},
	}}
}

// podInfoVolume gives the wrapper the pod's identity as files (rather than
// env vars in the app's environment): --podinfo-dir reads them.
func podInfoVolume() corev1.Volume {
	item := func(file, field string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: file, FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: field}}
	}
	return corev1.Volume{Name: PodInfoVolumeName, VolumeSource: corev1.VolumeSource{
		DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			item("namespace", "metadata.namespace"),
			item("name", "metadata.name"),
			item("uid", "metadata.uid"),
		}},
	}}
}

// securityContext is the one every injected container runs with: the
// restricted Pod Security Standard, as a fixed non-root user.
func securityContext(uid int64) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                ptr(uid),
		RunAsGroup:               ptr(uid),
		RunAsNonRoot:             ptr(true),
		ReadOnlyRootFilesystem:   ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func initContainer(cfg Config) corev1.Container {
	return corev1.Container{
		Name:                     InitContainerName,
		Image:                    cfg.Images.Tee,
		ImagePullPolicy:          cfg.Images.PullPolicy,
		Command:                  []string{TeeImageBinary, "install", BinDir},
		Resources:                *cfg.InitResources.DeepCopy(),
		VolumeMounts:             []corev1.VolumeMount{{Name: BinVolumeName, MountPath: BinDir}},
		SecurityContext:          securityContext(cfg.RunAsUser),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// appMounts are added to a wrapped container.
func appMounts() []corev1.VolumeMount {
	return []corev1.VolumeMount{
		{Name: BinVolumeName, MountPath: BinDir, ReadOnly: true},
		{Name: LogsVolumeName, MountPath: LogDir},
		{Name: PodInfoVolumeName, MountPath: PodInfoDir, ReadOnly: true},
	}
}

// mountClash names a mount of the container that our mounts would collide with.
func mountClash(c *corev1.Container) string {
	for _, m := range c.VolumeMounts {
		for _, ours := range appMounts() {
			if m.MountPath == ours.MountPath || m.MountPath == "/fargate-otel" {
				return m.MountPath
			}
		}
	}
	return ""
}

// OTLPInsecureEnv is the one OTLP variable the injector gives a captured
// container. No endpoint, no protocol: OpenTelemetry SDKs default to the
// collector's own addresses, localhost:4317 for OTLP/gRPC and
// localhost:4318 for OTLP/HTTP, and the sidecar listens on both, so each SDK
// finds the port of the protocol it speaks. One endpoint variable cannot
// serve both (OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 sends an
// SDK hard-wired to OTLP/HTTP to the gRPC port), and a protocol variable
// is ignored by SDKs whose exporter fixes the protocol (Go's otlptracehttp,
// otlptracegrpc). What the default lacks is plaintext: Go's exporters
// default to TLS, which the sidecar on localhost does not speak; the
// variable turns that off for both protocols (other SDKs' defaults are
// plain http:// already).
const OTLPInsecureEnv = "OTEL_EXPORTER_OTLP_INSECURE"

// otlpEnv points an OpenTelemetry SDK at the collector sidecar.
func otlpEnv() []corev1.EnvVar {
	return []corev1.EnvVar{{Name: OTLPInsecureEnv, Value: "true"}}
}

// OTLPEnvNames are the variables this injector, or an earlier version of
// it, gave captured containers (Uninject takes them out again).
var OTLPEnvNames = []string{OTLPInsecureEnv, "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"}

// appChoseOTLPTarget says whether a variable tells the SDK where or how
// securely to send: an endpoint or an insecure switch, for all signals or
// one. Such an app chose its own collector, and the injector's plaintext
// switch could break it (an endpoint without a scheme that needs TLS).
// A protocol, headers or timeouts alone do not: the default endpoints
// still reach the sidecar.
func appChoseOTLPTarget(name string) bool {
	rest, ok := strings.CutPrefix(name, "OTEL_EXPORTER_OTLP_")
	if !ok {
		return false
	}
	for _, signal := range []string{"TRACES_", "METRICS_", "LOGS_"} {
		rest = strings.TrimPrefix(rest, signal)
	}
	switch rest {
	case "ENDPOINT", "INSECURE", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY":
		return true
	}
	return false
}

// addOTLPEnv adds the OTLP variable unless the app chose its own target.
// It is given only to captured containers: those the user excluded
// (fargate-otel.io/skip-containers, or not named in
// fargate-otel.io/containers) get nothing. An env entry would override a
// value from envFrom, whose content the injector cannot see, so a container
// with envFrom is left alone too.
func addOTLPEnv(c *corev1.Container) (added bool, why string) {
	for _, e := range c.Env {
		if appChoseOTLPTarget(e.Name) {
			return false, ""
		}
	}
	if len(c.EnvFrom) > 0 {
		return false, fmt.Sprintf("container %s uses envFrom, so %s=true was not set (it would override envFrom); an OpenTelemetry SDK reaches the collector at its default localhost:4317 (gRPC) or localhost:4318 (HTTP) if it sends in plaintext (Go's exporters need %s=true or WithInsecure)", c.Name, OTLPInsecureEnv, OTLPInsecureEnv)
	}
	c.Env = append(c.Env, otlpEnv()...)
	return true, ""
}

// logFlags divides the logs volume between the wrapped containers: each
// wrapper's budget, so that their sum stays well below the emptyDir's
// sizeLimit (the kubelet evicts a pod whose emptyDir passes it), and a
// rotation size that lets each budget hold at least two files. The wrappers
// share half of the volume; the other half is the collector's (file_log
// offsets, the exporters' on-disk sending queue) and slack for the moment
// between a write and the rotation that follows it.
func logFlags(limit, maxSize resource.Quantity, maxBackups int, format string, n int) (teeFlags, string) {
	const mi = 1 << 20
	if n < 1 {
		n = 1
	}
	usable := limit.Value() / 2
	per := usable / int64(n) / mi * mi
	var warn string
	if per < 2*mi {
		warn = fmt.Sprintf("the logs volume (%s) is small for %d captured containers: each gets a %dMi budget; raise the annotation fargate-otel.io/logs-volume-size",
			limit.String(), n, max(per/mi, 1))
		per = max(per, mi)
	}
	size := min(maxSize.Value(), per/2) / mi * mi
	size = max(size, mi)
	return teeFlags{
		maxSize:    fmt.Sprintf("%dMi", size/mi),
		maxBackups: maxBackups,
		budget:     fmt.Sprintf("%dMi", per/mi),
		format:     format,
	}, warn
}

func ptr[T any](v T) *T { return &v }
