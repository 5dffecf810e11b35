package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/manifest"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

type renderOptions struct {
	config configFlags
	files  []string
}

func newRenderCommand() *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "render [-f FILE|-]",
		Short: "Print the collector config the injector gives a pod",
		Long: `Prints the OpenTelemetry Collector config that the sidecar of an injected pod
runs (what its FARGATE_OTEL_SETTINGS render), for the settings given by --config and the
flags. With -f, one config per workload of the manifests, taking each pod's
fargate-otel.io/ annotations (signals, exporters ConfigMap in the same input)
into account.`,
		Example: `  fargate-otel render --cluster-name prod --exporter-endpoint gateway.observability:4317
  fargate-otel render -f deploy.yaml --config injector.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config.config(cmd.Flags())
			if err != nil {
				return err
			}
			return o.run(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg)
		},
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "manifests whose pods to render the config of, - for standard input")
	o.config.register(cmd.Flags())
	return cmd
}

func (o *renderOptions) run(stdin io.Reader, stdout, stderr io.Writer, cfg injector.Config) error {
	if len(o.files) == 0 {
		return renderOne(stdout, stderr, nil, cfg, "")
	}
	input, err := readInputs(stdin, o.files)
	if err != nil {
		return err
	}
	pods, err := manifest.Pods(input...)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		return fmt.Errorf("no workload with a pod template in the input (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)")
	}
	for i, p := range pods {
		if p.Error != "" {
			return fmt.Errorf("%s: %s", p.Object, p.Error)
		}
		if i > 0 {
			if _, err := fmt.Fprintln(stdout, "---"); err != nil {
				return err
			}
		}
		c := cfg
		c.ReferencedExporters = p.Exporters
		if err := renderOne(stdout, stderr, p.Pod, c, fmt.Sprintf("# %s\n", p.Object)); err != nil {
			return fmt.Errorf("%s: %w", p.Object, err)
		}
	}
	return nil
}

func renderOne(stdout, stderr io.Writer, pod *corev1.Pod, cfg injector.Config, header string) error {
	if hasCollector(pod) {
		// An injected pod runs the settings it carries, whatever this
		// machine's flags say: render those (a live config from the fleet
		// may have replaced them since; `fargate-otel fleet` shows its hash).
		out, err := injector.CollectorConfigOf(pod)
		if err != nil {
			return fmt.Errorf("already injected, but its sidecar's settings do not decode (re-inject it with fargate-otel inject --reinject): %w", err)
		}
		_, err = fmt.Fprint(stdout, header, "# already injected: the config its sidecar was given at admission\n", string(out))
		return err
	}
	cc, warnings, err := injector.CollectorConfig(pod, cfg)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		_, _ = fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	out, err := sidecarconfig.Render(cc)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(stdout, header, string(out))
	return err
}

// hasCollector tells an injected pod: it has the collector sidecar (as an
// init container when native, else as a container).
func hasCollector(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == injector.CollectorContainerName {
				return true
			}
		}
	}
	return false
}
