package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
)

// options are the server's settings: injector.Config (from --config, then
// the flags that override it) and how the server itself runs.
type options struct {
	configFile string
	cfg        injector.Config
	// nativeSidecars is auto (from the API server's version), true or false.
	nativeSidecars string
	// preStopSleep (the collector's preStop sleep action) likewise.
	preStopSleep string

	webhookHost       string
	webhookPort       int
	certDir           string
	certName, keyName string
	certWatchInterval time.Duration
	enableHTTP2       bool

	metricsAddr string
	probeAddr   string

	leaderElect             bool
	leaderElectionNamespace string

	lookupDisabled     bool
	platform           string
	insecureRegistries []string
	lookupBudget       time.Duration
	fetchTimeout       time.Duration
	disableECR         bool

	logFormat string
	logLevel  string

	certs certOptions // managedcerts.go
}

// maxLookupBudget keeps the registry look-ups under the webhook's timeout
// (10 s in the chart) with room for everything else.
const maxLookupBudget = 8 * time.Second

func parseOptions(args []string, output io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fargate-otel-injector", flag.ContinueOnError)
	fs.SetOutput(output)
	config.RegisterFlags(fs) // --kubeconfig (default: in-cluster)

	fs.StringVar(&o.configFile, "config", "", "injector config file (YAML, the fields of injector.Config); defaults when empty")
	clusterName := fs.String("cluster-name", "", "cluster name (k8s.cluster.name); overrides clusterName of --config")
	teeImage := fs.String("tee-image", "", "fargate-otel-tee image; overrides images.tee")
	collectorImage := fs.String("collector-image", "", "fargate-otel-collector image; overrides images.collector")
	kubeletStats := fs.String("kubelet-stats-mode", "", "how collectors read kubelet stats: proxy (through fargate-otel-nodeproxy), direct (nodes/proxy) or off; overrides kubeletStats.mode")
	scope := fs.String("scope", "", "which pods are injected: fargate or all; overrides scope")
	fs.StringVar(&o.nativeSidecars, "native-sidecars", "auto", "run the collector as a native sidecar: auto (when the API server is >= 1.29), true or false")
	fs.StringVar(&o.preStopSleep, "prestop-sleep", "auto", "give a collector that runs as a regular container (no native sidecars) a preStop sleep of collector.shutdownDelay: auto (when the API server is >= 1.30), true or false")

	fs.StringVar(&o.webhookHost, "webhook-host", "", "address the webhook server listens on (all when empty)")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "port of the webhook server")
	fs.StringVar(&o.certDir, "cert-dir", "/etc/fargate-otel/webhook-certs", "directory of the webhook's TLS certificate and key, reloaded when they change")
	fs.StringVar(&o.certName, "cert-name", "tls.crt", "certificate file in --cert-dir")
	fs.StringVar(&o.keyName, "key-name", "tls.key", "key file in --cert-dir")
	fs.DurationVar(&o.certWatchInterval, "cert-watch-interval", 10*time.Second, "how often the certificate files are re-read besides file-change events")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "serve the webhook over HTTP/2 too (off: HTTP/2 rapid-reset and stream-cancel CVEs)")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 disables it)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader among replicas for the controllers (the webhook is served by every replica)")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")

	fs.BoolVar(&o.lookupDisabled, "disable-image-lookup", false, "never read entrypoints from registries: containers without command are left unwrapped with a warning")
	fs.StringVar(&o.platform, "image-platform", entrypoint.DefaultPlatform, "platform whose manifest is read from multi-arch images (Fargate runs linux/amd64)")
	insecure := fs.String("insecure-registries", "", "comma-separated registries (host[:port]) reached over plain HTTP")
	fs.DurationVar(&o.lookupBudget, "image-lookup-budget", entrypoint.DefaultBudget, "time one admission may spend reading image entrypoints (at most 8s: the webhook timeout is 10s)")
	fs.DurationVar(&o.fetchTimeout, "image-fetch-timeout", entrypoint.DefaultFetchTimeout, "time one registry look-up may take; it goes on past the budget to fill the cache")
	fs.BoolVar(&o.disableECR, "disable-ecr", false, "never ask AWS for ECR credentials")

	fs.StringVar(&o.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info or error")
	o.certs.register(fs)

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: every setting is a flag", fs.Args())
	}

	cfg := injector.DefaultConfig()
	if o.configFile != "" {
		var err error
		if cfg, err = injector.LoadConfig(o.configFile); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["cluster-name"] {
		cfg.ClusterName = *clusterName
	}
	if set["tee-image"] {
		cfg.Images.Tee = *teeImage
	}
	if set["collector-image"] {
		cfg.Images.Collector = *collectorImage
	}
	if set["kubelet-stats-mode"] {
		cfg.KubeletStats.Mode = injector.KubeletStatsMode(*kubeletStats)
	}
	if set["scope"] {
		cfg.Scope = injector.Scope(*scope)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o.cfg = cfg

	for _, r := range strings.Split(*insecure, ",") {
		if r = strings.TrimSpace(r); r != "" {
			o.insecureRegistries = append(o.insecureRegistries, r)
		}
	}
	var errs []error
	switch o.nativeSidecars {
	case "auto", "true", "false":
	default:
		errs = append(errs, fmt.Errorf("--native-sidecars=%q: want auto, true or false", o.nativeSidecars))
	}
	switch o.preStopSleep {
	case "auto", "true", "false":
	default:
		errs = append(errs, fmt.Errorf("--prestop-sleep=%q: want auto, true or false", o.preStopSleep))
	}
	if o.lookupBudget <= 0 || o.lookupBudget > maxLookupBudget {
		errs = append(errs, fmt.Errorf("--image-lookup-budget=%s: want more than 0 and at most %s, well under the webhook timeout", o.lookupBudget, maxLookupBudget))
	}
	if o.fetchTimeout < o.lookupBudget {
		errs = append(errs, fmt.Errorf("--image-fetch-timeout=%s is shorter than --image-lookup-budget=%s", o.fetchTimeout, o.lookupBudget))
	}
	if o.webhookPort <= 0 || o.webhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port=%d is not a port", o.webhookPort))
	}
	if o.logFormat != "json" && o.logFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format=%q: want json or text", o.logFormat))
	}
	if _, ok := slogLevels[o.logLevel]; !ok {
		errs = append(errs, fmt.Errorf("--log-level=%q: want debug, info or error", o.logLevel))
	}
	if err := o.certs.validate(); err != nil {
		errs = append(errs, err)
	}
	if o.leaderElectionNamespace == "" {
		o.leaderElectionNamespace = os.Getenv("POD_NAMESPACE")
	}
	return o, errors.Join(errs...)
}

var slogLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "error": slog.LevelError}

// newLogger is a structured logger (JSON by default) for controller-runtime
// (logr) and client-go (klog). logr's V(1) is slog's debug level.
func newLogger(w io.Writer, format, level string) logr.Logger {
	hopts := &slog.HandlerOptions{Level: slogLevels[level], ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		// logr's V(1), V(2)... are slog levels -1, -2...: call them all debug.
		if a.Key == slog.LevelKey {
			if l, ok := a.Value.Any().(slog.Level); ok && l < slog.LevelInfo {
				a.Value = slog.StringValue("DEBUG")
			}
		}
		return a
	}}
	var h slog.Handler = slog.NewJSONHandler(w, hopts)
	if format == "text" {
		h = slog.NewTextHandler(w, hopts)
	}
	log := logr.FromSlogHandler(h)
	klog.SetLogger(log.WithName("client-go"))
	return log
}
