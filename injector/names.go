package injector

// Names and paths of what the injector adds to a pod. Other areas (the
// wrapper, the collector config, the chart, the e2e tests) rely on them.
const (
	InitContainerName      = "fargate-otel-init"
	CollectorContainerName = "otel-collector"

	BinVolumeName       = "fargate-otel-bin"
	LogsVolumeName      = "fargate-otel-logs"
	PodInfoVolumeName   = "fargate-otel-podinfo"
	ProxyTokenVolume    = "fargate-otel-nodeproxy-token"
	APITokenVolumeName  = "fargate-otel-api-token"
	ServiceAccountMount = "/var/run/secrets/kubernetes.io/serviceaccount"

	// Paths in the app containers.
	BinDir     = "/fargate-otel/bin"
	LogDir     = "/fargate-otel/logs"
	PodInfoDir = "/fargate-otel/podinfo"
	TeePath    = BinDir + "/fargate-otel-tee"

	// TeeImageBinary is where the tee image (FROM scratch) keeps the binary.
	TeeImageBinary = "/fargate-otel-tee"

	// Paths in the collector.
	CollectorLogDir   = "/var/log/pods"
	CollectorStateDir = "/var/lib/fargate-otel"
	// StateSubPath is the folder of the logs volume that keeps the
	// collector's file_log offsets; the wrapper never writes there (its
	// folders are <namespace>_<pod>_<uid>).
	StateSubPath = ".fargate-otel-state"

	// ShutdownTimeoutEnv is the collector's hard stop: from SIGTERM it exits
	// within this Go duration whatever a component's shutdown waits for.
	ShutdownTimeoutEnv = "FARGATE_OTEL_SHUTDOWN_TIMEOUT"

	// Fargate markers: the label the EKS Fargate webhook sets, and the scheduler.
	FargateProfileLabel = "eks.amazonaws.com/fargate-profile"
	FargateScheduler    = "fargate-scheduler"

	// StatusVersion is the format version of the status annotation.
	StatusVersion = 1

	// OTLP ports on localhost: the app's SDK sends there.
	otlpGRPCPort = 4317
	otlpHTTPPort = 4318
)
