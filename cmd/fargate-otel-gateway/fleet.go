//go:build !windows

package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/otelcol"
	"go.yaml.in/yaml/v3"

	"github.com/fargate-otel/fargate-otel/fleetagent/agent"
	"github.com/fargate-otel/fargate-otel/fleetagent/figures"
	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// The fleet agent of a gateway replica (FARGATE_OTEL_FLEET_ENDPOINT set,
// with the token and CA files the sidecar's agent reads: the chart mounts
// them). It is the sidecar's agent (fleetagent/agent) with kind gateway and
// no Apply: the gateway's config is the chart's ConfigMap, so the agent
// reports but never takes config. What it reports:
//   - identity: the pod's name, uid, namespace and node (Downward API);
//   - health: every component's status (the fleet_status extension, added
//     to the config by a converter as in the sidecar);
//   - the effective config: the --config files as the chart wrote them,
//     before ${env:...} expansion (so replicas with one config report one
//     hash, and a header read from a Secret shows as its env var's name),
//     redacted by the agent and again by the server;
//   - figures: export failures and the last successful export per signal,
//     from each exporter's own telemetry (fleetagent/figures). A gateway
//     reads no files, so it reports no lines.

// clusterNameEnv is k8s.cluster.name for the agent's description (the
// chart's clusterName; "" leaves it out).
const clusterNameEnv = "FARGATE_OTEL_CLUSTER_NAME"

// agentStopWithin bounds the agent's goodbye at the replica's end.
const agentStopWithin = 2 * time.Second

type gatewayFleet struct {
	log     *slog.Logger
	cfg     agent.Config
	build   component.BuildInfo
	figures *figures.Figures
	tracker *fleetstatus.Tracker
	config  *configCapture
	agent   atomic.Pointer[agent.Agent]
}

// newFleet returns the gateway's fleet agent, or nil when the fleet env is
// not set (or is wrong: said once, and the gateway runs without an agent).
// args are the command line's (the --config flags).
func newFleet(log *slog.Logger, build component.BuildInfo, args []string) *gatewayFleet {
	cfg, ok, err := agent.ConfigFromEnv()
	if !ok {
		return nil
	}
	if err != nil {
		log.Error("The fleet agent is off: the gateway runs without it", "error", err.Error())
		return nil
	}
	f := &gatewayFleet{log: log, cfg: cfg, build: build, figures: figures.New(nil)}
	f.tracker = fleetstatus.NewTracker(f.healthChanged)
	f.config = newConfigCapture(configURIs(args), f.configChanged)
	return f
}

// prepare counts the exporters' outcomes into the figures, adds the
// fleet_status extension, and captures the config the collector resolves.
func (f *gatewayFleet) prepare(set *otelcol.CollectorSettings) {
	gen := set.Factories
	set.Factories = func() (otelcol.Factories, error) {
		fs, err := gen()
		if err != nil {
			return fs, err
		}
		for t, e := range fs.Exporters {
			fs.Exporters[t] = figures.WrapExporter(e, f.figures)
		}
		fs.Extensions[fleetstatus.Type] = fleetstatus.NewFactory(f.tracker)
		fs.ExtensionModules[fleetstatus.Type] = "github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus (this project)"
		return fs, nil
	}
	rs := &set.ConfigProviderSettings.ResolverSettings
	providers := make([]confmap.ProviderFactory, 0, len(rs.ProviderFactories))
	for _, p := range rs.ProviderFactories {
		providers = append(providers, f.config.wrap(p))
	}
	rs.ProviderFactories = providers
	// The capture first: the effective config is the chart's, without the
	// extension the next converter adds.
	rs.ConverterFactories = append(slices.Clone(rs.ConverterFactories), f.config.converter(), fleetstatus.NewConverter())
}

// start connects the agent in the background; the returned func
// disconnects it. A failure to start leaves the gateway without an agent.
func (f *gatewayFleet) start() func() {
	f.tracker.Begin(time.Now())
	a, err := agent.New(agent.Options{
		Config:   f.cfg,
		Identity: agent.GatewayIdentityFromEnv(os.Getenv(clusterNameEnv), f.build.Version),
		Log:      f.log,
		// No Apply: the gateway's config is the chart's.
		Effective: f.config.effective,
		Health:    f.tracker.Snapshot,
		Figures:   func(ctx context.Context) figures.Report { return f.figures.Report(ctx, time.Now()) },
	})
	if err == nil {
		err = a.Start(context.Background())
	}
	if err != nil {
		f.log.Error("The fleet agent is off: the gateway runs without it", "error", err.Error())
		return func() {}
	}
	f.agent.Store(a)
	// The config may have been resolved before the agent was stored.
	a.ConfigChanged()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), agentStopWithin)
		defer cancel()
		a.Stop(ctx)
	}
}

// ended records why the collector stopped, for the agent's last report.
func (f *gatewayFleet) ended(err error) {
	if err != nil {
		f.tracker.Down(err.Error())
	}
}

func (f *gatewayFleet) healthChanged() {
	if a := f.agent.Load(); a != nil {
		a.HealthChanged()
	}
}

func (f *gatewayFleet) configChanged() {
	if a := f.agent.Load(); a != nil {
		a.ConfigChanged()
	}
}

// configCapture keeps what the providers returned for the --config URIs,
// unexpanded, and renders it as YAML once a resolution is complete (the
// converter runs after every provider).
type configCapture struct {
	uris     []string // as the resolver passes them to the providers
	onChange func()

	mu   sync.Mutex
	raw  map[string]map[string]any
	yaml []byte
	hash string
}

func newConfigCapture(uris []string, onChange func()) *configCapture {
	norm := make([]string, 0, len(uris))
	for _, u := range uris {
		// As confmap's resolver: a URI without a scheme is a file.
		if !strings.Contains(u, ":") {
			u = "file:" + u
		}
		norm = append(norm, u)
	}
	return &configCapture{uris: norm, onChange: onChange, raw: map[string]map[string]any{}}
}

func (c *configCapture) wrap(pf confmap.ProviderFactory) confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(ps confmap.ProviderSettings) confmap.Provider {
		return &capturingProvider{Provider: pf.Create(ps), c: c}
	})
}

type capturingProvider struct {
	confmap.Provider
	c *configCapture
}

func (p *capturingProvider) Retrieve(ctx context.Context, uri string, watcher confmap.WatcherFunc) (*confmap.Retrieved, error) {
	r, err := p.Provider.Retrieve(ctx, uri, watcher)
	if err != nil || !slices.Contains(p.c.uris, uri) {
		return r, err
	}
	if raw, rerr := r.AsRaw(); rerr == nil {
		m, _ := raw.(map[string]any)
		p.c.mu.Lock()
		p.c.raw[uri] = m
		p.c.mu.Unlock()
	}
	return r, err
}

func (c *configCapture) converter() confmap.ConverterFactory {
	return confmap.NewConverterFactory(func(confmap.ConverterSettings) confmap.Converter { return captureConverter{c} })
}

type captureConverter struct{ c *configCapture }

// Convert leaves conf as it is: it renders what the --config URIs gave.
func (cc captureConverter) Convert(context.Context, *confmap.Conf) error {
	cc.c.render()
	return nil
}

func (c *configCapture) render() {
	c.mu.Lock()
	merged := confmap.New()
	for _, u := range c.uris {
		if m := c.raw[u]; m != nil {
			_ = merged.Merge(confmap.NewFromStringMap(m))
		}
	}
	out, err := yaml.Marshal(merged.ToStringMap())
	changed := false
	if err == nil && len(merged.AllKeys()) > 0 {
		h := sidecarconfig.Hash(out)
		changed = h != c.hash
		c.yaml, c.hash = out, h
	}
	c.mu.Unlock()
	if changed && c.onChange != nil {
		c.onChange()
	}
}

// effective is the config the collector runs (empty until it is resolved).
func (c *configCapture) effective() agent.Effective {
	c.mu.Lock()
	defer c.mu.Unlock()
	return agent.Effective{YAML: c.yaml, Hash: c.hash}
}

// configURIs are the --config flags' values, in order.
func configURIs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		switch {
		case a == "config":
			if i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
		case strings.HasPrefix(a, "config="):
			out = append(out, strings.TrimPrefix(a, "config="))
		}
	}
	return out
}

// jsonLogger is the agent's log, JSON lines on stderr as the sidecar's
// supervisor writes them.
func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			a.Key = "ts"
		case slog.LevelKey:
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}))
}
