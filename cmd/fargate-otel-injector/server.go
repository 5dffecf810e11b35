package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/nodeproxy/controllers"
)

// Name is the manager's name: event source, leader election ID.
const Name = "fargate-otel-injector"

// serve builds the manager and runs it until ctx is done.
func serve(ctx context.Context, opts *options, log logr.Logger) error {
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes API: %w (in a cluster the service account is used; outside, give --kubeconfig)", err)
	}
	restCfg.UserAgent = Name

	cfg := opts.cfg
	if cfg.NativeSidecars, cfg.SleepAction, err = serverFeatures(ctx, restCfg, opts.nativeSidecars, opts.preStopSleep, log); err != nil {
		return err
	}

	certs := newCertLoader(filepath.Join(opts.certDir, opts.certName), filepath.Join(opts.certDir, opts.keyName), opts.certWatchInterval, log)
	webhookOpts := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host: opts.webhookHost,
		Port: opts.webhookPort,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.GetCertificate = certs.GetCertificate
			c.MinVersion = tls.VersionTLS12
			if !opts.enableHTTP2 {
				c.NextProtos = []string{"http/1.1"}
			}
		}},
	})
	shutdown := 30 * time.Second
	mgr, err := ctrl.NewManager(restCfg, manager.Options{
		Logger:                  log,
		Metrics:                 metricsserver.Options{BindAddress: opts.metricsAddr},
		HealthProbeBindAddress:  opts.probeAddr,
		WebhookServer:           webhookOpts,
		LeaderElection:          opts.leaderElect,
		LeaderElectionID:        Name,
		LeaderElectionNamespace: opts.leaderElectionNamespace,
		GracefulShutdownTimeout: &shutdown,
		Cache:                   webhookCacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("create the manager: %w", err)
	}
	if err := mgr.Add(certs); err != nil {
		return err
	}

	synced, err := webhookInformers(ctx, mgr)
	if err != nil {
		return err
	}
	handler, err := newHandler(mgr, restCfg, cfg, opts, synced, log)
	if err != nil {
		return err
	}
	// GetWebhookServer (not the variable) adds the server to the manager.
	webhookServer := mgr.GetWebhookServer()
	webhookServer.Register(webhook.Path, handler.Webhook())

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	started := webhookServer.StartedChecker()
	if err := mgr.AddReadyzCheck("webhook", func(req *http.Request) error {
		if err := certs.Ready(); err != nil {
			return err
		}
		return started(req) // listens, and completes a TLS handshake
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", cachesReady(synced, time.Now(), cacheReadyGrace)); err != nil {
		return err
	}

	if err := setupControllers(mgr, cfg, opts, log); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}

	log.Info("starting", "webhook", fmt.Sprintf("%s:%d%s", opts.webhookHost, opts.webhookPort, webhook.Path),
		"nativeSidecars", cfg.NativeSidecars, "preStopSleep", cfg.SleepAction, "scope", cfg.Scope, "kubeletStats", cfg.KubeletStats.Modes(),
		"imageLookup", !opts.lookupDisabled, "clusterName", cfg.ClusterName)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	log.Info("stopped")
	return nil
}

// setupControllers adds the controllers that run next to the webhook in
// the same manager (and, with --leader-elect, only on the leader). Add a
// controller here with ctrl.NewControllerManagedBy(mgr)...Complete(r) or
// mgr.Add(runnable); cfg is the injector's configuration (e.g.
// cfg.KubeletStats.NodeProxy names the CA ConfigMap to publish). RBAC for
// what they watch goes into the chart.
func setupControllers(mgr manager.Manager, cfg injector.Config, opts *options, log logr.Logger) error {
	// Certificates without cert-manager (--manage-certs).
	if err := setupCertRotation(mgr, opts, cfg, log); err != nil {
		return err
	}
	// kubelet stats: the proxy's CA in opted-in namespaces (mode proxy),
	// the one binding of mode direct (see nodeproxy/rbac for the RBAC).
	// Every allowed mode: namespaces choose theirs with a label.
	return controllers.Setup(mgr, nodeproxyConfig(cfg, opts))
}

// nodeproxyConfig is the configuration of the nodeproxy controllers, and of
// the webhook's CA publishing, from the injector's.
func nodeproxyConfig(cfg injector.Config, opts *options) controllers.Config {
	var modes []string
	for _, m := range cfg.KubeletStats.Modes() {
		modes = append(modes, string(m))
	}
	return controllers.Config{
		Mode:        string(cfg.KubeletStats.Mode),
		Modes:       modes,
		CAConfigMap: cfg.KubeletStats.NodeProxy.CAConfigMap,
		CAFile:      opts.certs.proxyCAFile,
	}
}

// newHandler wires the webhook: image look-ups with pull secrets read through
// the API, exporters ConfigMaps read through the manager's API reader,
// events through the manager's recorder, metrics on its registry.
func newHandler(mgr manager.Manager, restCfg *rest.Config, cfg injector.Config, opts *options, synced func() bool, log logr.Logger) (*webhook.Handler, error) {
	metrics, err := webhook.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return nil, err
	}
	hopts := webhook.Options{
		Config:      cfg,
		ConfigMaps:  mgr.GetAPIReader(),
		Cache:       mgr.GetCache(),
		CacheSynced: synced,
		Recorder:    mgr.GetEventRecorder(Name),
		Metrics:     metrics,
		Log:         log.WithName("webhook"),
	}
	if cfg.KubeletStats.Allows(injector.KubeletStatsProxy) {
		// A pod in mode proxy may come before the publisher got to its
		// namespace (labelled in the same apply as its workloads): the
		// webhook publishes the CA itself, the way the publisher does, on
		// whichever replica serves the pod.
		pub, err := controllers.NewCAPublisherFor(mgr, nodeproxyConfig(cfg, opts))
		if err != nil {
			return nil, err
		}
		hopts.PublishNodeProxyCA = publishFunc(pub)
	}
	if !opts.lookupDisabled {
		// Pull secrets are read on cache misses only; a burst of pods in new
		// namespaces must not wait on client-go's default 5 QPS.
		kcfg := rest.CopyConfig(restCfg)
		kcfg.QPS, kcfg.Burst = 50, 100
		kube, err := kubernetes.NewForConfig(kcfg)
		if err != nil {
			return nil, err
		}
		if os.Getenv("AWS_ECR_DISABLE_CACHE") == "" {
			// The ECR helper's file cache needs a writable home; the resolver
			// keeps tokens in memory instead.
			_ = os.Setenv("AWS_ECR_DISABLE_CACHE", "true")
		}
		resolver, err := entrypoint.New(entrypoint.Options{
			Platform:           opts.platform,
			InsecureRegistries: opts.insecureRegistries,
			Budget:             opts.lookupBudget,
			FetchTimeout:       opts.fetchTimeout,
			Kubernetes:         kube,
			DisableECR:         opts.disableECR,
			Observer:           metrics,
		})
		if err != nil {
			return nil, err
		}
		hopts.Resolver = resolver
	}
	return webhook.NewHandler(hopts), nil
}

// publishFunc adapts the CA publisher to webhook.Options.PublishNodeProxyCA.
func publishFunc(pub *controllers.CAPublisher) func(ctx context.Context, namespace string, dryRun bool) (*corev1.ConfigMap, error) {
	return func(ctx context.Context, namespace string, dryRun bool) (*corev1.ConfigMap, error) {
		cm, _, err := pub.Publish(ctx, namespace, dryRun)
		return cm, err
	}
}

// nativeSidecarsSince is the first Kubernetes release that runs init
// containers with restartPolicy Always as sidecars by default;
// sleepActionSince the first that accepts the preStop sleep action by
// default (PodLifecycleSleepAction beta): an older one rejects the pod.
var (
	nativeSidecarsSince = version.MustParseGeneric("1.29.0")
	sleepActionSince    = version.MustParseGeneric("1.30.0")
)

// serverFeatures decides whether the collector is a native sidecar and gets
// a preStop sleep: from the flags, or (auto) from the API server's version.
func serverFeatures(ctx context.Context, restCfg *rest.Config, nativeMode, sleepMode string, log logr.Logger) (native, sleep bool, err error) {
	var gitVersion string
	if nativeMode == "auto" || sleepMode == "auto" {
		if gitVersion, err = serverVersion(ctx, restCfg, log); err != nil {
			return false, false, err
		}
	}
	if native, err = featureFrom(nativeMode, gitVersion, nativeSidecarsSince, "--native-sidecars"); err != nil {
		return false, false, err
	}
	if sleep, err = featureFrom(sleepMode, gitVersion, sleepActionSince, "--prestop-sleep"); err != nil {
		return false, false, err
	}
	log.Info("API server features", "version", gitVersion, "nativeSidecars", native, "preStopSleep", sleep)
	return native, sleep, nil
}

// featureFrom is true, false, or (auto) whether gitVersion is at least since.
func featureFrom(mode, gitVersion string, since *version.Version, flag string) (bool, error) {
	switch mode {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	v, err := version.ParseGeneric(gitVersion)
	if err != nil {
		return false, fmt.Errorf("API server version %q: %w (set %s=true or false)", gitVersion, err, flag)
	}
	return v.AtLeast(since), nil
}

// serverVersion asks the API server's version until ctx or 30 s run out.
func serverVersion(ctx context.Context, restCfg *rest.Config, log logr.Logger) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		return "", err
	}
	var gitVersion string
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Second, true, func(context.Context) (bool, error) {
		info, err := dc.ServerVersion()
		if err != nil {
			lastErr = err
			log.Info("waiting for the API server's version", "error", err.Error())
			return false, nil
		}
		gitVersion = info.GitVersion
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("read the API server's version (for --native-sidecars and --prestop-sleep auto; or set them true or false): %w", errors.Join(err, lastErr))
	}
	return gitVersion, nil
}

func supportsNativeSidecars(gitVersion string) (bool, error) {
	return featureFrom("auto", gitVersion, nativeSidecarsSince, "--native-sidecars")
}
