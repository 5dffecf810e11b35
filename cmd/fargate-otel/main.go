// Command fargate-otel is the CLI for people: `inject` runs the injection
// offline on manifests (like `linkerd inject`), `render` prints the
// collector config the injector would give a pod.
package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "fargate-otel",
		Short: "Telemetry for pods on EKS Fargate: inject manifests, render collector configs, check a cluster",
		// Errors are printed once, by cobra, without the usage text.
		SilenceUsage: true,
	}
	root.AddCommand(newInjectCommand())
	root.AddCommand(newRenderCommand())
	root.AddCommand(newDoctorCommand())
	root.AddCommand(newFleetCommand())
	return root
}
