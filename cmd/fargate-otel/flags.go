package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// configFlags are the injector settings both inject and render take: a
// config file (the one the Helm chart gives the injector) and flags over it.
type configFlags struct {
	file          string
	clusterName   string
	kubeletStats  string
	nodeProxyNS   string
	exporter      string
	signals       []string
	teeImage      string
	collectorImg  string
	nativeSidecar bool
	preStopSleep  bool
}

func (f *configFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.file, "config", "", "injector config file (YAML, the fields of injector.Config; the Helm chart's injector config works as is)")
	fs.StringVar(&f.clusterName, "cluster-name", "", "cluster name (k8s.cluster.name)")
	fs.StringVar(&f.kubeletStats, "kubelet-stats", "", "how the collector reads kubelet stats: proxy, direct or off (default from the config: proxy)")
	fs.StringVar(&f.nodeProxyNS, "nodeproxy-namespace", "", "namespace of the fargate-otel-nodeproxy Service (mode proxy; default fargate-otel)")
	fs.StringVar(&f.exporter, "exporter-endpoint", "", "send everything over OTLP/gRPC to this host:port instead of the configured exporters")
	fs.StringSliceVar(&f.signals, "signals", nil, "signals to collect (logs,metrics,traces; default all)")
	fs.StringVar(&f.teeImage, "tee-image", "", "image of the fargate-otel-tee init container")
	fs.StringVar(&f.collectorImg, "collector-image", "", "image of the collector sidecar")
	fs.BoolVar(&f.nativeSidecar, "native-sidecars", true, "the cluster runs native sidecars (Kubernetes >= 1.29); false makes the collector a regular container")
	fs.BoolVar(&f.preStopSleep, "prestop-sleep", true, "with --native-sidecars=false, give the collector a preStop sleep (the API server's sleep action, Kubernetes >= 1.30); false for older clusters")
}

// config builds the injector config: defaults, the file, then flags.
func (f *configFlags) config(fs *pflag.FlagSet) (injector.Config, error) {
	cfg := injector.DefaultConfig()
	if f.file != "" {
		var err error
		if cfg, err = injector.LoadConfig(f.file); err != nil {
			return cfg, err
		}
	}
	if fs.Changed("cluster-name") {
		cfg.ClusterName = f.clusterName
	}
	if f.kubeletStats != "" {
		cfg.KubeletStats.Mode = injector.KubeletStatsMode(f.kubeletStats)
	}
	if f.nodeProxyNS != "" {
		cfg.KubeletStats.NodeProxy.Namespace = f.nodeProxyNS
	}
	if f.exporter != "" {
		e := sidecarconfig.GatewayExporter(f.exporter)
		cfg.Exporters = []injector.ExporterSpec{{ID: e.ID, Config: e.Config}}
	}
	if fs.Changed("signals") {
		cfg.Signals = injector.SignalSettings{}
		for _, s := range f.signals {
			switch strings.TrimSpace(s) {
			case "logs":
				cfg.Signals.Logs = true
			case "metrics":
				cfg.Signals.Metrics = true
			case "traces":
				cfg.Signals.Traces = true
			default:
				return cfg, fmt.Errorf("--signals: %q is not logs, metrics or traces", s)
			}
		}
	}
	if f.teeImage != "" {
		cfg.Images.Tee = f.teeImage
	}
	if f.collectorImg != "" {
		cfg.Images.Collector = f.collectorImg
	}
	if fs.Changed("native-sidecars") {
		cfg.NativeSidecars = f.nativeSidecar
	}
	if fs.Changed("prestop-sleep") {
		cfg.SleepAction = f.preStopSleep
	}
	// The CLI injects what it is given, Fargate or not: the user asked.
	cfg.Scope = injector.ScopeAll
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}
