package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/certs"
	"github.com/fargate-otel/fargate-otel/nodeproxy/controllers"
)

// certOptions: the certificates the injector generates and rotates itself
// when cert-manager is not used (package injector/certs).
type certOptions struct {
	manage         bool
	namespace      string
	caSecret       string
	webhookSecret  string
	webhookService string
	webhookConfig  string
	proxySecret    string
	proxyCAFile    string
	fleetSecret    string
	fleetService   string
	caValidity     time.Duration
	certValidity   time.Duration
	interval       time.Duration
}

func (c *certOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.manage, "manage-certs", false, "generate and rotate the webhook's and the node proxy's certificates in Secrets (instead of cert-manager), keep the webhook's caBundle in sync, and write the files of --cert-dir and --nodeproxy-ca-file from them")
	fs.StringVar(&c.namespace, "certs-namespace", "", "namespace of the certificate Secrets and of the webhook and proxy Services (default: the pod's, $POD_NAMESPACE)")
	fs.StringVar(&c.caSecret, "ca-secret", "fargate-otel-ca", "Secret holding the CAs and their keys (--manage-certs)")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "fargate-otel-injector-tls", "Secret holding the webhook's serving certificate (--manage-certs)")
	fs.StringVar(&c.webhookService, "webhook-service", "fargate-otel-injector", "Service the API server calls the webhook through: the certificate's DNS names (--manage-certs)")
	fs.StringVar(&c.webhookConfig, "webhook-config-name", "fargate-otel-injector", "MutatingWebhookConfiguration whose caBundle is kept in sync (--manage-certs)")
	fs.StringVar(&c.proxySecret, "nodeproxy-secret", "fargate-otel-nodeproxy-tls", "Secret holding the node proxy's serving certificate, issued when kubelet stats mode proxy is the default or allowed (--manage-certs; empty: none)")
	fs.StringVar(&c.fleetSecret, "fleet-secret", "", "Secret holding the fleet server's serving certificate, signed by the same CA as the node proxy's so that sidecars verify it with the published CA ConfigMap (--manage-certs; empty: none)")
	fs.StringVar(&c.fleetService, "fleet-service", "fargate-otel-fleet", "Service the sidecars reach the fleet server through: its certificate's DNS names (--manage-certs)")
	fs.StringVar(&c.proxyCAFile, "nodeproxy-ca-file", controllers.DefaultCAFile, "the node proxy's CA bundle, published to opted-in namespaces; with --manage-certs the injector writes it")
	fs.DurationVar(&c.caValidity, "ca-validity", certs.DefaultCAValidity, "lifetime of a generated CA (--manage-certs)")
	fs.DurationVar(&c.certValidity, "cert-validity", certs.DefaultCertValidity, "lifetime of a generated serving certificate; renewed when a third is left (--manage-certs)")
	fs.DurationVar(&c.interval, "cert-check-interval", 10*time.Second, "how often certificates are checked, and each replica re-reads its Secrets (--manage-certs)")
}

func (c *certOptions) validate() error {
	if c.namespace == "" {
		c.namespace = os.Getenv("POD_NAMESPACE")
	}
	if !c.manage {
		return nil
	}
	var errs []error
	if c.namespace == "" {
		errs = append(errs, errors.New("--manage-certs needs --certs-namespace (or $POD_NAMESPACE)"))
	}
	if c.interval <= 0 || c.certValidity < 6*c.interval {
		errs = append(errs, fmt.Errorf("--cert-check-interval=%s: want more than 0 and at most a sixth of --cert-validity=%s, so that a renewal is never late", c.interval, c.certValidity))
	}
	if err := (certs.Policy{CAValidity: c.caValidity, CertValidity: c.certValidity}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--ca-validity, --cert-validity: %w", err))
	}
	return errors.Join(errs...)
}

// setupCertRotation adds the rotator and the file syncer (injector/certs)
// when the injector manages its certificates.
func setupCertRotation(mgr manager.Manager, opts *options, cfg injector.Config, log logr.Logger) error {
	c := opts.certs
	if !c.manage {
		return nil
	}
	conf := certs.Config{
		Namespace:      c.namespace,
		CASecret:       c.caSecret,
		Leaves:         []certs.Leaf{{Secret: c.webhookSecret, DNSNames: certs.ServiceDNSNames(c.webhookService, c.namespace)}},
		WebhookConfigs: []string{c.webhookConfig},
		Policy:         certs.Policy{CAValidity: c.caValidity, CertValidity: c.certValidity},
	}
	files := []certs.FileSync{{Secret: c.webhookSecret, Dir: opts.certDir,
		Files: map[string]string{certs.KeyTLSCert: opts.certName, certs.KeyTLSKey: opts.keyName}}}
	if np := cfg.KubeletStats.NodeProxy; cfg.KubeletStats.Allows(injector.KubeletStatsProxy) && c.proxySecret != "" {
		conf.Leaves = append(conf.Leaves, certs.Leaf{Secret: c.proxySecret, DNSNames: certs.ServiceDNSNames(np.Service, np.Namespace)})
		files = append(files, certs.FileSync{Secret: c.proxySecret, Dir: filepath.Dir(c.proxyCAFile),
			Files: map[string]string{certs.KeyCABundle: filepath.Base(c.proxyCAFile)}})
	}
	if c.fleetSecret != "" {
		conf.Leaves = append(conf.Leaves, certs.Leaf{Secret: c.fleetSecret, DNSNames: certs.ServiceDNSNames(c.fleetService, c.namespace)})
	}
	return certs.Setup(mgr, certs.Options{Config: conf, Files: files, Interval: c.interval, Log: log.WithName("certs")})
}
