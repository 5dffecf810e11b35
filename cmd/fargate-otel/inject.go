package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/manifest"
)

type injectOptions struct {
	config     configFlags
	files      []string
	resolve    bool
	insecure   []string
	platform   string
	timeout    time.Duration
	quiet      bool
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	newResolve func(o *injectOptions) (func(*corev1.Pod, []injector.ImageRequest) injector.Images, error)
}

func newInjectCommand() *cobra.Command {
	o := &injectOptions{}
	cmd := &cobra.Command{
		Use:   "inject -f FILE|-",
		Short: "Inject fargate-otel into the pod templates of Kubernetes manifests",
		Long: `Reads Kubernetes manifests (multi-document YAML) and writes them back with
fargate-otel injected into every Pod, Deployment, StatefulSet, DaemonSet,
ReplicaSet, ReplicationController, Job and CronJob, exactly as the webhook
would. Other kinds pass through untouched. A report goes to standard error.

The CLI injects what it is given, Fargate or not. Containers without a
command in the spec are left unwrapped and reported, unless --resolve reads
their image's ENTRYPOINT and CMD from the registry (anonymous or ECR
credentials).`,
		Example: `  fargate-otel inject -f deploy.yaml | kubectl apply -f -
  kubectl get deploy web -o yaml | fargate-otel inject -f - --resolve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.stdin, o.stdout, o.stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			cfg, err := o.config.config(cmd.Flags())
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cfg)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file to inject, - for standard input (repeatable)")
	fs.BoolVar(&o.resolve, "resolve", false, "read ENTRYPOINT/CMD of images whose containers have no command from their registry")
	fs.StringSliceVar(&o.insecure, "insecure-registry", nil, "registries (host:port) reached over plain HTTP by --resolve")
	fs.StringVar(&o.platform, "platform", "linux/amd64", "platform of a multi-arch image to read (Fargate runs linux/amd64)")
	fs.DurationVar(&o.timeout, "resolve-timeout", 20*time.Second, "time budget of the look-ups of one pod")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no report on standard error")
	o.config.register(fs)
	o.newResolve = registryResolver
	return cmd
}

func (o *injectOptions) run(ctx context.Context, cfg injector.Config) error {
	input, err := readInputs(o.stdin, o.files)
	if err != nil {
		return err
	}
	opts := manifest.Options{Config: cfg}
	if o.resolve {
		if opts.Resolve, err = o.newResolve(o); err != nil {
			return err
		}
	}
	out, objects, err := manifest.Inject(input, opts)
	if err != nil {
		return fmt.Errorf("%w (nothing was written)", err)
	}
	if _, err := o.stdout.Write(out); err != nil {
		return err
	}
	failed := 0
	hint := false
	for _, obj := range objects {
		if obj.Error != "" {
			failed++
		}
		if len(manifest.UnwrappedForLackOfCommand(obj)) > 0 && !o.resolve {
			hint = true
		}
		if !o.quiet {
			report(o.stderr, obj)
		}
	}
	if hint && !o.quiet {
		_, _ = fmt.Fprintln(o.stderr, "hint: --resolve reads the command of such containers from their image's registry")
	}
	if failed > 0 {
		return fmt.Errorf("%d object(s) could not be read and were left as they were", failed)
	}
	return nil
}

// report prints one line per object, then its warnings.
func report(w io.Writer, obj manifest.Object) {
	switch {
	case obj.Error != "":
		_, _ = fmt.Fprintf(w, "%s: error: %s\n", obj, obj.Error)
	case obj.Injected:
		_, _ = fmt.Fprintf(w, "%s injected", obj)
		if obj.Status != nil && len(obj.Status.Containers) > 0 {
			_, _ = fmt.Fprintf(w, " (logs of %v)", obj.Status.Containers)
		}
		_, _ = fmt.Fprintln(w)
	case obj.Skip == injector.SkipAlreadyInjected:
		_, _ = fmt.Fprintf(w, "%s already injected, unchanged\n", obj)
	default:
		_, _ = fmt.Fprintf(w, "%s skipped (%s)\n", obj, obj.Skip)
	}
	for _, warning := range obj.Warnings {
		_, _ = fmt.Fprintf(w, "  warning: %s\n", warning)
	}
}

// registryResolver reads images with the same resolver as the webhook,
// without Kubernetes credentials (the CLI has no cluster access here):
// anonymous, and ECR through the AWS default credential chain.
func registryResolver(o *injectOptions) (func(*corev1.Pod, []injector.ImageRequest) injector.Images, error) {
	r, err := entrypoint.New(entrypoint.Options{
		Platform:           o.platform,
		InsecureRegistries: o.insecure,
		Budget:             o.timeout,
		FetchTimeout:       o.timeout,
		OnThisMachine:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("--resolve: %w", err)
	}
	return func(pod *corev1.Pod, reqs []injector.ImageRequest) injector.Images {
		creds := entrypoint.Credentials{Namespace: pod.Namespace, ServiceAccountName: pod.Spec.ServiceAccountName}
		return r.Resolve(context.Background(), reqs, creds)
	}, nil
}
