// Package agent is the fleet's OpAMP agent (opamp-go's WebSocket client),
// run beside a collector: a pod's sidecar (cmd/fargate-otel-collector) or a
// gateway replica (cmd/fargate-otel-gateway). It reports its pod's identity
// and kind, the collector's health, effective config (secrets redacted) and
// own figures to the fleet server, and, in a sidecar, hands the live
// settings the server sends to the supervisor, which applies them
// (docs/fleet-protocol.md). An agent without Options.Apply (the gateway,
// whose config is the chart's) does not accept remote config. It never holds the collector back: the
// collector runs whether or not the server answers, and everything here
// runs in the agent's own goroutines.
package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/fargate-otel/fargate-otel/fleetagent/figures"
	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// The custom capability and message type of the agent's figures.
const (
	FiguresCapability  = "io.fargate-otel.figures"
	FiguresMessageType = "figures"
)

// EffectiveConfigName names the collector's YAML in the EffectiveConfig.
const EffectiveConfigName = "collector.yaml"

// Heartbeats: every DefaultHeartbeat unless FARGATE_OTEL_FLEET_HEARTBEAT
// says otherwise, within [MinHeartbeat, MaxHeartbeat].
const (
	DefaultHeartbeat = 30 * time.Second
	MinHeartbeat     = time.Second
	MaxHeartbeat     = 10 * time.Minute
)

// Config is where and how the agent connects.
type Config struct {
	Endpoint  string // wss://...
	TokenFile string
	CAFile    string
	Heartbeat time.Duration
}

// ConfigFromEnv reads the agent's env vars. ok is false when no endpoint is
// set (no agent); an error says what is wrong with the values.
func ConfigFromEnv() (cfg Config, ok bool, err error) {
	cfg = Config{
		Endpoint:  os.Getenv(EndpointEnv),
		TokenFile: envOr(TokenFileEnv, DefaultTokenFile),
		CAFile:    envOr(CAFileEnv, DefaultCAFile),
		Heartbeat: DefaultHeartbeat,
	}
	if cfg.Endpoint == "" {
		return cfg, false, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Scheme != "wss" || u.Host == "" {
		return cfg, true, fmt.Errorf("%s=%q: the fleet endpoint must be a wss:// URL (OpAMP over TLS only), e.g. wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp", EndpointEnv, cfg.Endpoint)
	}
	if v := os.Getenv(HeartbeatEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinHeartbeat || d > MaxHeartbeat {
			return cfg, true, fmt.Errorf("%s=%q: must be a duration from %s to %s, e.g. 30s", HeartbeatEnv, v, MinHeartbeat, MaxHeartbeat)
		}
		cfg.Heartbeat = d
	}
	return cfg, true, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Effective is the config the collector runs.
type Effective struct {
	YAML []byte // rendered, not redacted
	Hash string // sidecarconfig.Hash(YAML)
}

// Options connect the agent to the supervisor.
type Options struct {
	Config   Config
	Identity Identity
	Log      *slog.Logger

	// Apply validates and applies the live settings body (Overrides JSON);
	// applying is called once the running collector is being swapped. nil
	// means applied (or nothing to change); the error says why not. A nil
	// Apply: the collector's config cannot be changed remotely (a gateway),
	// and the agent does not advertise AcceptsRemoteConfig.
	Apply func(ctx context.Context, body []byte, applying func()) error
	// Effective returns the config the collector runs now.
	Effective func() Effective
	// Health returns the collector's health now.
	Health func() fleetstatus.Snapshot
	// Figures returns the sidecar's figures now.
	Figures func(context.Context) figures.Report
	// Applied is the hash of the live settings the collector was started
	// with (saved from an earlier run), nil when none.
	Applied []byte
}

// Agent is a running OpAMP agent.
type Agent struct {
	opts   Options
	log    *slog.Logger
	client client.OpAMPClient
	gate   *gate

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	configs      chan *protobufs.AgentRemoteConfig // latest wins
	healthDirty  chan struct{}
	configDirty  chan struct{}
	figuresDirty chan struct{}

	mu        sync.Mutex
	secrets   []string // literals redacted from the effective config
	lastHash  []byte   // the remote config last acted on
	applied   bool     // lastHash was applied
	failures  int      // connection attempts failed in a row
	failedAt  int      // the attempt whose failure was logged last
	tokenWarn string   // the token problem logged last
}

// New prepares an agent; Start connects it.
func New(opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		opts:         opts,
		log:          opts.Log.With("component", "fleet agent"),
		gate:         newGate(max(opts.Config.Heartbeat, 5*time.Second)),
		configs:      make(chan *protobufs.AgentRemoteConfig, 1),
		healthDirty:  make(chan struct{}, 1),
		configDirty:  make(chan struct{}, 1),
		figuresDirty: make(chan struct{}, 1),
	}
	if opts.Applied != nil {
		a.lastHash, a.applied = opts.Applied, true
	}
	return a, nil
}

// Start connects to the fleet server in the background.
func (a *Agent) Start(ctx context.Context) error {
	uid, err := a.opts.Identity.InstanceUID()
	if err != nil {
		return err
	}
	a.ctx, a.cancel = context.WithCancel(ctx)
	c := client.NewWebSocket(&logger{a.log})
	eff := a.opts.Effective()
	if err := c.SetAgentDescription(a.opts.Identity.Description(eff.Hash)); err != nil {
		return err
	}
	caps := a.capabilities()
	// Health first: the capability to report it needs one.
	if err := c.SetHealth(a.health()); err != nil {
		return err
	}
	if err := c.SetCapabilities(&caps); err != nil {
		return err
	}
	if err := c.SetCustomCapabilities(&protobufs.CustomCapabilities{Capabilities: []string{FiguresCapability}}); err != nil {
		return err
	}
	heartbeat := a.opts.Config.Heartbeat
	settings := types.StartSettings{
		OpAMPServerURL:    a.opts.Config.Endpoint,
		TLSConfig:         tlsConfig(a.opts.Config.CAFile),
		HeaderFunc:        a.header,
		InstanceUid:       uid,
		HeartbeatInterval: &heartbeat,
		Callbacks: types.Callbacks{
			OnConnect:          a.onConnect,
			OnConnectFailed:    a.onConnectFailed,
			OnError:            a.onError,
			OnMessage:          a.onMessage,
			GetEffectiveConfig: a.effectiveConfig,
		},
	}
	if a.opts.Applied != nil && a.acceptsRemoteConfig() {
		settings.RemoteConfigStatus = &protobufs.RemoteConfigStatus{
			LastRemoteConfigHash: a.opts.Applied,
			Status:               protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED,
		}
	}
	if err := c.Start(a.ctx, settings); err != nil {
		return fmt.Errorf("start the fleet agent: %w", err)
	}
	a.client = c
	if a.acceptsRemoteConfig() {
		a.wg.Go(a.applyLoop)
	}
	a.wg.Go(a.reportLoop)
	a.log.Info("Connecting to the fleet server", "endpoint", a.opts.Config.Endpoint, "heartbeat", heartbeat.String(), "kind", a.opts.Identity.kind())
	return nil
}

// acceptsRemoteConfig: the supervisor can apply live settings.
func (a *Agent) acceptsRemoteConfig() bool { return a.opts.Apply != nil }

// capabilities are what the agent tells the server it does: an agent that
// cannot apply remote config neither accepts nor reports it.
func (a *Agent) capabilities() protobufs.AgentCapabilities {
	caps := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat
	if a.acceptsRemoteConfig() {
		caps |= protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
			protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig
	}
	return caps
}

// Stop disconnects (telling the server) within ctx.
func (a *Agent) Stop(ctx context.Context) {
	if a.client == nil {
		return
	}
	a.gate.close()
	a.cancel()
	done := make(chan struct{})
	go func() {
		_ = a.client.Stop(ctx)
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		a.log.Warn("The fleet agent did not stop in time; the process exits without it")
	}
}

// HealthChanged tells the agent that the collector's health changed.
func (a *Agent) HealthChanged() { signal(a.healthDirty) }

// ConfigChanged tells the agent that the collector runs another config.
func (a *Agent) ConfigChanged() { signal(a.configDirty) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// header is called right before every connection attempt: it paces the
// attempts (backoff.go) and reads the token again (the kubelet rotates it).
func (a *Agent) header(h http.Header) http.Header {
	if !a.gate.wait() {
		return h
	}
	tok, err := os.ReadFile(a.opts.Config.TokenFile)
	warn := ""
	switch {
	case err != nil:
		warn = "Cannot read the fleet token (" + err.Error() + "): connecting without it, the server will refuse"
	case len(bytes.TrimSpace(tok)) == 0:
		warn = "The fleet token file is empty: connecting without it, the server will refuse"
	default:
		h.Set("Authorization", "Bearer "+string(bytes.TrimSpace(tok)))
	}
	a.mu.Lock()
	changed := warn != a.tokenWarn
	a.tokenWarn = warn
	a.mu.Unlock()
	if changed && warn != "" {
		// Once per change: the projected token shows up or rotates.
		a.log.Warn(warn, "file", a.opts.Config.TokenFile)
	}
	return h
}

func (a *Agent) onConnect(context.Context) {
	a.gate.connected()
	a.mu.Lock()
	failed := a.failures
	a.failures = 0
	a.mu.Unlock()
	a.log.Info("Connected to the fleet server", "failed_attempts_before", failed)
	signal(a.figuresDirty)
}

func (a *Agent) onConnectFailed(_ context.Context, err error) {
	attempt := a.gate.attempt()
	a.mu.Lock()
	if attempt == a.failedAt {
		a.mu.Unlock()
		return // opamp-go v0.23.0 reports a failed dial twice
	}
	a.failedAt = attempt
	a.failures++
	n := a.failures
	a.mu.Unlock()
	// Each attempt is paced, so this is at most one line per backoff step.
	a.log.Warn("Cannot connect to the fleet server; the collector runs on with its config and the agent tries again later",
		"endpoint", a.opts.Config.Endpoint, "error", err.Error(), "attempt", n)
}

func (a *Agent) onError(_ context.Context, resp *protobufs.ServerErrorResponse) {
	a.log.Warn("The fleet server answered with an error", "type", resp.GetType().String(), "error", resp.GetErrorMessage())
}

func (a *Agent) onMessage(_ context.Context, msg *types.MessageData) {
	if msg.RemoteConfig == nil {
		return
	}
	if !a.acceptsRemoteConfig() {
		// Not asked for (no AcceptsRemoteConfig): ignored, as the protocol
		// says, and said once per config.
		a.mu.Lock()
		seen := bytes.Equal(a.lastHash, msg.RemoteConfig.GetConfigHash())
		a.lastHash = msg.RemoteConfig.GetConfigHash()
		a.mu.Unlock()
		if !seen {
			a.log.Warn("The fleet server sent a remote config to an agent that does not accept one; ignored: this collector runs its own config")
		}
		return
	}
	// The newest config replaces one not yet taken: only the last counts.
	for {
		select {
		case a.configs <- msg.RemoteConfig:
			return
		default:
		}
		select {
		case <-a.configs:
		default:
		}
	}
}

func (a *Agent) effectiveConfig(context.Context) (*protobufs.EffectiveConfig, error) {
	eff := a.opts.Effective()
	if len(eff.YAML) == 0 {
		return nil, nil
	}
	red, secrets, err := Redact(eff.YAML)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.secrets = secrets
	a.mu.Unlock()
	return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		EffectiveConfigName: {Body: red, ContentType: "text/yaml"},
	}}}, nil
}

func (a *Agent) knownSecrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets
}

func (a *Agent) health() *protobufs.ComponentHealth {
	return health(a.opts.Health(), time.Now(), a.knownSecrets())
}

// applyLoop applies the configs the server sends, one at a time.
func (a *Agent) applyLoop() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case rc := <-a.configs:
			a.applyRemote(rc)
		}
	}
}

func (a *Agent) setStatus(hash []byte, st protobufs.RemoteConfigStatuses, msg string) {
	if err := a.client.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{LastRemoteConfigHash: hash, Status: st, ErrorMessage: msg}); err != nil {
		a.log.Warn("Cannot set the remote config status", "error", err.Error())
	}
}

func (a *Agent) applyRemote(rc *protobufs.AgentRemoteConfig) {
	hash := rc.GetConfigHash()
	if hash == nil {
		hash = []byte{}
	}
	a.mu.Lock()
	same := a.lastHash != nil && bytes.Equal(hash, a.lastHash)
	a.mu.Unlock()
	if same {
		// Already acted on (a resend after a reconnect): running it, or it
		// failed and its FAILED status stands; a new config, or the next
		// start of the container, tries again.
		return
	}
	body, err := overridesBody(rc)
	if err == nil {
		sum := sha256.Sum256(body)
		if !bytes.Equal(sum[:], hash) {
			err = fmt.Errorf("the config hash %s is not the SHA-256 of the %s file (%s): a fleet server bug", hex.EncodeToString(hash), sidecarconfig.OverridesConfigName, hex.EncodeToString(sum[:]))
		}
	}
	if err == nil {
		err = a.opts.Apply(a.ctx, body, func() {
			a.setStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING, "")
		})
	}
	a.mu.Lock()
	a.lastHash, a.applied = hash, err == nil
	a.mu.Unlock()
	if a.ctx.Err() != nil {
		return // stopping: the status is not known
	}
	if err != nil {
		msg := Scrub(err.Error(), a.knownSecrets())
		a.log.Warn("The fleet's live settings were not applied; the collector runs its last good config", "error", msg)
		a.setStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, msg)
		return
	}
	a.setStatus(hash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED, "")
	a.log.Info("The fleet's live settings are applied", "config_hash", a.opts.Effective().Hash)
}

// overridesBody is the Overrides file of a remote config.
func overridesBody(rc *protobufs.AgentRemoteConfig) ([]byte, error) {
	files := rc.GetConfig().GetConfigMap()
	f, ok := files[sidecarconfig.OverridesConfigName]
	if !ok {
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		return nil, fmt.Errorf("the remote config has no file %q (it has %v): the fleet server sends the live settings in that file", sidecarconfig.OverridesConfigName, names)
	}
	if ct := f.GetContentType(); ct != "" && ct != sidecarconfig.OverridesContentType {
		return nil, fmt.Errorf("the %s file has content type %q, want %s", sidecarconfig.OverridesConfigName, ct, sidecarconfig.OverridesContentType)
	}
	return f.GetBody(), nil
}

// reportLoop sends health when it changes (coalesced), the effective config
// and description when the collector's config changes, and the figures
// every heartbeat and on connect.
func (a *Agent) reportLoop() {
	tick := time.NewTicker(a.opts.Config.Heartbeat)
	defer tick.Stop()
	const coalesce = 200 * time.Millisecond
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.healthDirty:
			if !sleepCtx(a.ctx, coalesce) {
				return
			}
			// Changes during the pause are in this report.
			select {
			case <-a.healthDirty:
			default:
			}
			if err := a.client.SetHealth(a.health()); err != nil {
				a.log.Warn("Cannot report health", "error", err.Error())
			}
		case <-a.configDirty:
			if err := a.client.SetAgentDescription(a.opts.Identity.Description(a.opts.Effective().Hash)); err != nil {
				a.log.Warn("Cannot report the description", "error", err.Error())
			}
			if err := a.client.UpdateEffectiveConfig(a.ctx); err != nil {
				a.log.Warn("Cannot report the effective config", "error", err.Error())
			}
		case <-tick.C:
			a.sendFigures()
		case <-a.figuresDirty:
			a.sendFigures()
		}
	}
}

func (a *Agent) sendFigures() {
	data, err := json.Marshal(a.opts.Figures(a.ctx))
	if err != nil {
		a.log.Warn("Cannot encode the figures", "error", err.Error())
		return
	}
	_, err = a.client.SendCustomMessage(&protobufs.CustomMessage{Capability: FiguresCapability, Type: FiguresMessageType, Data: data})
	if err != nil && !errors.Is(err, types.ErrCustomMessagePending) {
		a.log.Warn("Cannot send the figures", "error", err.Error())
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// logger passes opamp-go's logs on at debug level: what matters (failed
// connections, the server's errors) the agent says itself, once per event.
type logger struct{ log *slog.Logger }

func (l *logger) Debugf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (l *logger) Errorf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
