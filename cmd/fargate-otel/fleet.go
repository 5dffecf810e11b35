package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

type fleetOptions struct {
	kubeconfig, context, releaseNS string
	url                            string
	filter                         api.Filter
	output                         string
	web                            bool
	timeout                        time.Duration
}

func newFleetCommand() *cobra.Command {
	o := &fleetOptions{}
	cmd := &cobra.Command{
		Use:   "fleet [-n NAMESPACE] [--kind sidecar|gateway] [--unhealthy] [--stale] [--dropping] [-o json] [--web]",
		Short: "List every sidecar collector and gateway replica the fleet server knows: health, versions, config hash, lines/s and drops",
		Long: `Lists the injected pods' collector sidecars, and the gateway's replicas when
the chart runs the gateway, as the fleet server sees them (every replica's
view, merged): kind, health, collector and injector versions, the hash of the
config each runs and where it stands with the live settings (a gateway runs
the chart's config and is never sent any), lines read and dropped per second.
The kind comes from each agent's service account, not from what it says.

It reaches the fleet server with a port-forward to one of its pods (your own
RBAC: create pods/portforward in the release namespace), or at --url.
--web keeps the port-forward open and prints the address of the fleet page.`,
		Example: `  fargate-otel fleet
  fargate-otel fleet -n shop --unhealthy
  fargate-otel fleet --stale -o json
  fargate-otel fleet --kind gateway
  fargate-otel fleet --web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "kubeconfig context")
	f.StringVar(&o.releaseNS, "release-namespace", api.DefaultNamespace, "namespace the chart is installed in")
	f.StringVar(&o.url, "url", "", "the fleet server's local API (e.g. http://127.0.0.1:4321 through your own port-forward) instead of port-forwarding")
	f.StringVarP(&o.filter.Namespace, "namespace", "n", "", "only the sidecars of this namespace")
	f.StringVar(&o.filter.Kind, "kind", "", "only agents of this kind: sidecar or gateway")
	f.BoolVar(&o.filter.Unhealthy, "unhealthy", false, "only sidecars that are unhealthy, disconnected, or whose live settings failed")
	f.BoolVar(&o.filter.Stale, "stale", false, "only sidecars of another release, or not running their live settings")
	f.BoolVar(&o.filter.Dropping, "dropping", false, "only sidecars that dropped lines or failed exports lately")
	f.StringVarP(&o.output, "output", "o", "table", "table or json")
	f.BoolVar(&o.web, "web", false, "serve the fleet page through a port-forward until interrupted")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "time limit")
	return cmd
}

func (o *fleetOptions) run(cmd *cobra.Command) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output %q: use table or json", o.output)
	}
	if err := api.CheckKind(o.filter.Kind); err != nil {
		return fmt.Errorf("--%w", err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	client, stop, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if o.web {
		// Ctrl-C is caught before it is offered: one pressed as soon as the
		// address shows still closes the port-forward and exits 0.
		sig, sigStop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer sigStop()
		q := o.filter.Query().Encode()
		if q != "" {
			q = "?" + q
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "The fleet page: %s/%s\nPress Ctrl-C to stop.\n", client.BaseURL, q); err != nil {
			return err
		}
		<-sig.Done()
		return nil
	}
	f, err := client.Fleet(ctx, o.filter)
	if err != nil {
		return err
	}
	if f.Partial() {
		for _, r := range f.Replicas {
			if r.Error != "" {
				_, _ = fmt.Fprintf(cmd.ErrOrStderr(), "warning: fleet server replica %s could not be read (%s): its sidecars are missing\n", r.Name, r.Error)
			}
		}
	}
	if o.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	}
	return printFleet(cmd.OutOrStdout(), f)
}

func (o *fleetOptions) connect(ctx context.Context) (api.Client, func(), error) {
	if o.url != "" {
		return api.Client{BaseURL: strings.TrimRight(o.url, "/")}, func() {}, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context}).ClientConfig()
	if err != nil {
		return api.Client{}, nil, fmt.Errorf("cluster credentials: %w (pass --kubeconfig or set KUBECONFIG)", err)
	}
	pfCtx := ctx
	if o.web {
		pfCtx = context.Background() // the page outlives the look-up's timeout
	}
	return api.PortForward(pfCtx, cfg, o.releaseNS)
}

// printFleet writes the agents as a table, with a summary line.
func printFleet(w io.Writer, f api.Fleet) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "NAMESPACE\tPOD\tKIND\tNODE\tHEALTH\tCOLLECTOR\tINJECTOR\tCONFIG\tLIVE SETTINGS\tLINES/S\tDROPS/S\tREPLICA")
	unhealthy, stale, dropping, gateways := 0, 0, 0, 0
	for _, a := range f.Agents {
		if a.Kind == api.KindGateway {
			gateways++
		}
		if a.Unhealthy() {
			unhealthy++
		}
		if len(a.Stale) > 0 {
			stale++
		}
		if a.Dropping() {
			dropping++
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			a.Namespace, a.Pod, dash(a.Kind), dash(a.Node), health(a), dash(a.CollectorVersion), dash(a.InjectorVersion), dash(shortHash(a.ConfigHash)),
			liveSettings(a), rate(a.Figures.LinesPerSecond), rate(a.Figures.DropsPerSecond), a.Replica)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	agents := fmt.Sprintf("%d sidecars", len(f.Agents)-gateways)
	if gateways > 0 {
		agents += fmt.Sprintf(" and %d gateway replicas", gateways)
	}
	_, err := fmt.Fprintf(w, "%s: %d unhealthy, %d stale, %d dropping (%d fleet server replicas)\n", agents, unhealthy, stale, dropping, len(f.Replicas))
	return err
}

func health(a api.Agent) string {
	switch {
	case !a.Connected:
		return "disconnected"
	case !a.Health.Reported:
		return "unknown"
	case a.Health.Healthy:
		return "healthy"
	}
	return "unhealthy"
}

func liveSettings(a api.Agent) string {
	rc := a.RemoteConfig
	s := "own"
	switch {
	case a.Kind == api.KindGateway:
		s = "chart's"
	case rc.DesiredError != "":
		s = "not sent"
	case rc.Desired == "":
	case rc.Last == rc.Desired:
		s = strings.ToLower(rc.Status)
	default:
		s = "pending"
	}
	if len(a.Stale) > 0 {
		s += " (stale: " + strings.Join(a.Stale, ",") + ")"
	}
	return s
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rate(v float64) string {
	if v == 0 {
		return "0"
	}
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
