package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/manifest"
)

type injectOptions struct {
	config       configFlags
	files        []string
	resolve      bool
	insecure     []string
	platform     string
	timeout      time.Duration
	quiet        bool
	strict       bool
	reinject     bool
	output       string
	commands     []string
	commandsFile string
	stdin        io.Reader
	stdout       io.Writer
	stderr       io.Writer
	newResolve   func(o *injectOptions) (func(*corev1.Pod, []injector.ImageRequest) injector.Images, error)
}

// Exit statuses of inject.
const (
	exitErrors      = 1 // bad input, or a template that could not be read
	exitNotCaptured = 2 // --strict, and a container is not captured
)

func newInjectCommand() *cobra.Command {
	o := &injectOptions{}
	cmd := &cobra.Command{
		Use:   "inject -f FILE|-",
		Short: "Inject fargate-otel into the pod templates of Kubernetes manifests",
		Long: `Reads Kubernetes manifests (multi-document YAML, or JSON) and writes them
back with fargate-otel injected into every Pod, Deployment, StatefulSet,
DaemonSet, ReplicaSet, ReplicationController, Job and CronJob, exactly as the
webhook would. Other kinds pass through untouched; a YAML document that is
injected keeps its comments and style, and only the injected lines are new.
JSON in gives JSON out (-o changes that). A report goes to standard error,
ending with a summary line.

The CLI injects what it is given, Fargate or not. A container without a
command in the spec is wrapped with the command given by --command or
--commands, else by the fargate-otel.io/command annotation, else by its
image's ENTRYPOINT and CMD read with --resolve (anonymous or ECR
credentials); otherwise it is left unwrapped and reported, and --strict
makes that exit with status 2.`,
		Example: `  fargate-otel inject -f deploy.yaml | kubectl apply -f -
  fargate-otel inject -f deploy.yaml --command 'web=["/app/server","--port=8080"]' --strict
  kubectl get deploy -o json | fargate-otel inject -f - | jq .
  fargate-otel inject -f injected.yaml --reinject --commands commands.yaml`,
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
	fs.StringArrayVar(&o.commands, "command", nil, "[KIND/NAME:]CONTAINER=JSON: the command of containers of that name that have none in their spec, as a JSON array (repeatable)")
	fs.StringVar(&o.commandsFile, "commands", "", "file (YAML or JSON) mapping [KIND/NAME:]CONTAINER to commands, as --command")
	fs.BoolVar(&o.strict, "strict", false, "exit with status 2 when a container whose logs are wanted is not captured")
	fs.BoolVar(&o.reinject, "reinject", false, "inject anew the templates that already carry an injection (the status annotation says what to take out)")
	fs.StringVarP(&o.output, "output", "o", "", "output format: json or yaml (default: JSON when every input is JSON, else YAML)")
	fs.BoolVar(&o.resolve, "resolve", false, "read ENTRYPOINT/CMD of images whose containers have no command from their registry")
	fs.StringSliceVar(&o.insecure, "insecure-registry", nil, "registries (host:port) reached over plain HTTP by --resolve")
	fs.StringVar(&o.platform, "platform", "linux/amd64", "platform of a multi-arch image to read (Fargate runs linux/amd64)")
	fs.DurationVar(&o.timeout, "resolve-timeout", 20*time.Second, "time budget of the look-ups of one pod")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no report on standard error (the summary line and errors still)")
	o.config.register(fs)
	o.newResolve = registryResolver
	return cmd
}

func (o *injectOptions) run(_ context.Context, cfg injector.Config) error {
	opts := manifest.Options{Config: cfg, Reinject: o.reinject}
	switch o.output {
	case "":
	case "json", "yaml":
		opts.Output = manifest.Format(o.output)
	default:
		return fmt.Errorf("-o %q: want json or yaml", o.output)
	}
	for _, c := range o.commands {
		cmd, err := parseCommand(c)
		if err != nil {
			return err
		}
		opts.Commands = append(opts.Commands, cmd)
	}
	if o.commandsFile != "" {
		cmds, err := readCommandsFile(o.commandsFile)
		if err != nil {
			return err
		}
		opts.Commands = append(opts.Commands, cmds...)
	}
	input, err := readInputs(o.stdin, o.files)
	if err != nil {
		return err
	}
	if o.resolve {
		if opts.Resolve, err = o.newResolve(o); err != nil {
			return err
		}
	}
	out, objects, err := manifest.InjectFiles(input, opts)
	if err != nil {
		return fmt.Errorf("%w (nothing was written)", err)
	}
	if _, err := o.stdout.Write(out); err != nil {
		return err
	}
	hint := false
	rewritten := map[int]bool{}
	for _, obj := range objects {
		if len(manifest.UnwrappedForLackOfCommand(obj)) > 0 {
			hint = true
		}
		if !o.quiet {
			report(o.stderr, obj)
			// Once per document (a List holds several objects).
			if obj.Rewritten != "" && !rewritten[obj.Document] {
				rewritten[obj.Document] = true
				_, _ = fmt.Fprintf(o.stderr, "warning: %s is written anew, not edited in place: %s; its comments, quoting and layout are the YAML encoder's, so a diff of it shows more than the injection\n",
					manifest.DocumentName(obj), obj.Rewritten)
			}
		}
	}
	if !o.quiet {
		for _, c := range unusedCommands(opts.Commands, objects) {
			_, _ = fmt.Fprintf(o.stderr, "warning: --command %s matched no container without a command\n", c)
		}
		if hint {
			what := "give such containers their command with --command CONTAINER=JSON (or --commands FILE)"
			if !o.resolve {
				what += ", or let --resolve read it from the image's registry"
			}
			_, _ = fmt.Fprintf(o.stderr, "hint: %s\n", what)
		}
	}
	sum := summarize(objects)
	_, _ = fmt.Fprintln(o.stderr, sum)
	if sum.failed > 0 {
		return exitError{exitErrors, fmt.Sprintf("%d object(s) could not be read and were left as they were", sum.failed)}
	}
	if o.strict && sum.notCaptured > 0 {
		return exitError{exitNotCaptured, fmt.Sprintf("--strict: %d container(s) not captured: %s", sum.notCaptured, strings.Join(sum.notCapturedNames, ", "))}
	}
	return nil
}

// exitError is an error with the exit status it gives.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// report prints one line per object, then its warnings.
func report(w io.Writer, obj manifest.Object) {
	switch {
	case obj.Error != "":
		_, _ = fmt.Fprintf(w, "%s: error: %s\n", obj, obj.Error)
	case obj.Injected:
		what := "injected"
		if obj.Reinjected {
			what = "injected anew"
		}
		_, _ = fmt.Fprintf(w, "%s %s", obj, what)
		if obj.Status != nil && len(obj.Status.Containers) > 0 {
			_, _ = fmt.Fprintf(w, " (logs of %v)", obj.Status.Containers)
		}
		if obj.Status != nil && len(obj.Status.Followed()) > 0 {
			_, _ = fmt.Fprintf(w, "; from the kubelet (log source api): %s", strings.Join(obj.Status.Followed(), ", "))
		}
		if obj.Status != nil && len(obj.Status.NotCaptured()) > 0 {
			_, _ = fmt.Fprintf(w, "; not captured: %s", strings.Join(obj.Status.NotCaptured(), ", "))
		}
		_, _ = fmt.Fprintln(w)
	case obj.Reinjected:
		_, _ = fmt.Fprintf(w, "%s: the injection was taken out; not injected anew (%s)\n", obj, obj.Skip)
	case obj.Skip == injector.SkipAlreadyInjected:
		_, _ = fmt.Fprintf(w, "%s already injected, unchanged", obj)
		missing := obj.Status.NotCaptured()
		if len(missing) == 0 {
			_, _ = fmt.Fprintln(w)
			break
		}
		_, _ = fmt.Fprintf(w, "; not captured when it was injected: %s\n", strings.Join(missing, ", "))
		if len(obj.CommandNowKnown) > 0 {
			_, _ = fmt.Fprintf(w, "  hint: a command for %s is known now: run again with --reinject to inject %s anew with it\n",
				strings.Join(obj.CommandNowKnown, ", "), obj)
		} else {
			_, _ = fmt.Fprintf(w, "  hint: give their command (--command %s=JSON, --resolve, or the annotation %s on the pod template), then run again with --reinject; or inject the original manifest\n",
				missing[0], annotations.Command)
		}
	default:
		_, _ = fmt.Fprintf(w, "%s skipped (%s)\n", obj, obj.Skip)
	}
	for _, warning := range obj.Warnings {
		_, _ = fmt.Fprintf(w, "  warning: %s\n", cliWarning(warning))
	}
}

// commandFix is how the injector's warnings say to give a command; the CLI
// has one more way.
const commandFix = "set command in the pod spec or the annotation " + annotations.Command

func cliWarning(w string) string {
	return strings.Replace(w, commandFix, "give it with --command CONTAINER=JSON, or "+commandFix, 1)
}

// unusedCommands are the --command targets that gave no container a command.
func unusedCommands(cmds []manifest.Command, objects []manifest.Object) []string {
	var out []string
	for _, c := range cmds {
		used := false
		for _, obj := range objects {
			if (c.Workload == "" || strings.EqualFold(c.Workload, obj.String())) && slices.Contains(obj.Commanded, c.Container) {
				used = true
			}
		}
		if !used {
			name := c.Container
			if c.Workload != "" {
				name = c.Workload + ":" + name
			}
			out = append(out, name)
		}
	}
	return out
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
