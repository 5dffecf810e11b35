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
	if cfg.NativeSidecars, err = nativeSidecars(ctx, restCfg, opts.nativeSidecars, log); err != nil {
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
	})
	if err != nil {
		return fmt.Errorf("create the manager: %w", err)
	}
	if err := mgr.Add(certs); err != nil {
		return err
	}

	handler, err := newHandler(mgr, restCfg, cfg, opts, log)
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

	if err := setupControllers(mgr, cfg, opts, log); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}

	log.Info("starting", "webhook", fmt.Sprintf("%s:%d%s", opts.webhookHost, opts.webhookPort, webhook.Path),
		"nativeSidecars", cfg.NativeSidecars, "scope", cfg.Scope, "kubeletStats", cfg.KubeletStats.Mode,
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
	return controllers.Setup(mgr, controllers.Config{
		Mode:        string(cfg.KubeletStats.Mode),
		CAConfigMap: cfg.KubeletStats.NodeProxy.CAConfigMap,
		CAFile:      opts.certs.proxyCAFile,
	})
}

// newHandler wires the webhook: image look-ups with pull secrets read through
// the API, exporters ConfigMaps read through the manager's API reader,
// events through the manager's recorder, metrics on its registry.
func newHandler(mgr manager.Manager, restCfg *rest.Config, cfg injector.Config, opts *options, log logr.Logger) (*webhook.Handler, error) {
	metrics, err := webhook.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return nil, err
	}
	hopts := webhook.Options{
		Config:     cfg,
		ConfigMaps: mgr.GetAPIReader(),
		Recorder:   mgr.GetEventRecorder(Name),
		Metrics:    metrics,
		Log:        log.WithName("webhook"),
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

// nativeSidecarsSince is the first Kubernetes release that runs init
// containers with restartPolicy Always as sidecars by default.
var nativeSidecarsSince = version.MustParseGeneric("1.29.0")

// nativeSidecars decides whether the collector is a native sidecar: from the
// flag, or (auto) from the API server's version, asked until ctx or 30 s
// run out.
func nativeSidecars(ctx context.Context, restCfg *rest.Config, mode string, log logr.Logger) (bool, error) {
	switch mode {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		return false, err
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
		return false, fmt.Errorf("read the API server's version (for --native-sidecars=auto; or set true/false): %w", errors.Join(err, lastErr))
	}
	supported, err := supportsNativeSidecars(gitVersion)
	if err != nil {
		return false, err
	}
	log.Info("API server version", "version", gitVersion, "nativeSidecars", supported)
	return supported, nil
}

func supportsNativeSidecars(gitVersion string) (bool, error) {
	v, err := version.ParseGeneric(gitVersion)
	if err != nil {
		return false, fmt.Errorf("API server version %q: %w (set --native-sidecars=true or false)", gitVersion, err)
	}
	return v.AtLeast(nativeSidecarsSince), nil
}
