// Package follow is the second log source of fargate-otel: for a container
// whose command cannot be wrapped, it follows the container's log from the
// kubelet (containerLogs, through the project's node proxy) and writes it as
// CRI files in exactly the layout, format and rotation the wrapper writes
// (package tee), so that the collector's one file_log pipeline reads both.
//
// The files are the only state: after a restart of the follower, each
// container resumes from the last timestamp written (the tail of its newest
// file), and the overlap that sinceTime gives back is dropped line by line,
// so nothing is lost or repeated while the kubelet still has the lines.
// Container restarts are followed by restartCount: the previous instance's
// last lines come from previous=true, the new instance goes to
// <restart>.log.
//
// The package uses the standard library, tee and logrotate only. It is built
// into its own small binary, fargate-otel-follow (the TLS client is what
// makes it larger than the wrapper), which `fargate-otel-tee follow` runs.
package follow

// Environment variables read when a flag is not given (the injector sets
// them from the Downward API); the pod's identity and the log folder use the
// wrapper's (tee.EnvNamespace, tee.EnvPod, tee.EnvPodUID, tee.EnvLogDir).
const (
	EnvNodeProxy    = "FARGATE_OTEL_NODE_PROXY"
	EnvTokenFile    = "FARGATE_OTEL_TOKEN_FILE"
	EnvCAFile       = "FARGATE_OTEL_CA_FILE"
	EnvNode         = "FARGATE_OTEL_NODE"
	EnvContainers   = "FARGATE_OTEL_CONTAINERS"
	EnvDrainTimeout = "FARGATE_OTEL_DRAIN_TIMEOUT"
	EnvRetryMax     = "FARGATE_OTEL_RETRY_MAX"
)

// Defaults of the flags.
const (
	DefaultDir       = "/var/log/pods"
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)
