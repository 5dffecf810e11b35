package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fargate-otel/fargate-otel/nodeproxy/doctor"
)

type doctorOptions struct {
	kubeconfig, context, namespace string
	pod, webhookConfig, proxyURL   string
	timeout                        time.Duration
}

func newDoctorCommand() *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor [-n NAMESPACE] [--pod POD]",
		Short: "Check a namespace or a pod: webhook, certificates, kubelet stats mode and access, with what to change",
		Long: `Checks, for a namespace (and a pod in it), what stands between its pods and
their telemetry: the injector's webhook is registered and selects the
namespace, its certificate is valid and accepted, it answers (a dry-run pod
is injected), and the kubelet stats path of the mode in use works: RBAC
asked as the service accounts themselves (SelfSubjectAccessReview with a
token requested for them), then a real request for /stats/summary as the
pod's collector makes it (with --pod). Every failed check says what to change.
Exits 1 when a check fails.

It needs the rights of a cluster administrator: list webhook configurations,
create pods (dry-run), request service account tokens, port-forward to the
node proxy.`,
		Example: `  fargate-otel doctor -n shop
  fargate-otel doctor -n shop --pod cart-7d9f8c6b5-x2k4p`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "kubeconfig context")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace to check (default: the context's)")
	f.StringVar(&o.pod, "pod", "", "pod to check, with a real stats request as its collector")
	f.StringVar(&o.webhookConfig, "webhook-config", "", "name of the MutatingWebhookConfiguration (default: any named fargate-otel*)")
	f.StringVar(&o.proxyURL, "proxy-url", "", "reach fargate-otel-nodeproxy here (from inside the cluster) instead of port-forwarding")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of each network step")
	return cmd
}

func (o *doctorOptions) run(cmd *cobra.Command) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	kc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context})
	cfg, err := kc.ClientConfig()
	if err != nil {
		return fmt.Errorf("cluster credentials: %w (pass --kubeconfig or set KUBECONFIG)", err)
	}
	ns := o.namespace
	if ns == "" {
		if ns, _, err = kc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
	defer cancel()
	report, err := doctor.Run(ctx, cfg, doctor.Options{
		Namespace: ns, Pod: o.pod, WebhookConfig: o.webhookConfig, ProxyURL: o.proxyURL, Timeout: o.timeout,
	})
	if err != nil {
		return err
	}
	if err := report.Print(cmd.OutOrStdout()); err != nil {
		return err
	}
	if n := report.Failed(); n > 0 {
		return fmt.Errorf("%d check(s) failed: see the fixes above", n)
	}
	return nil
}
