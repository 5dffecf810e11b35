// Package fleettest is a simulated sidecar agent for tests and benchmarks:
// a real opamp-go WebSocket client that speaks docs/fleet-protocol.md as
// the sidecar's agent does (identity, health, effective config, figures,
// remote config status), applies what the server sends by parsing it with
// sidecarconfig, and records it. The fleet's cluster tests, its page test,
// its benchmark and the e2e tests drive the server with it.
package fleettest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Protocol names (docs/fleet-protocol.md).
const (
	FiguresCapability  = "io.fargate-otel.figures"
	FiguresMessageType = "figures"
)

// AgentOptions describe one simulated sidecar.
type AgentOptions struct {
	// URL is wss://host:port/v1/opamp; TLS verifies the server.
	URL string
	TLS *tls.Config
	// Token returns the bearer token for each (re)connect; nil sends none.
	Token func() string
	// Kind is the fargate-otel.kind the agent says ("" is sidecar, as the
	// sidecar's agent says; "-" says none, as an agent of an earlier
	// release). Whatever its kind, the simulated agent accepts remote
	// config and records it: a test sees what the server would send.
	Kind string
	// UID is the instance_uid (the pod's uid).
	UID                       string
	Namespace, Pod, Node      string
	Version, InjectorVersion  string
	ExportersSource           string
	BootstrapHash, ConfigHash string
	Healthy                   bool
	LastError                 string
	EffectiveConfig           string
	Heartbeat                 time.Duration
	// Apply decides the fate of received live settings (default: they
	// must parse as sidecarconfig.Overrides and apply to the defaults).
	Apply func(body []byte) error
	// Pace reconnects as the sidecar's agent does: 1s doubling to 5m, with
	// jitter, on top of opamp-go's own backoff.
	Pace bool
	// OnConfig is called after a config was recorded (the bench).
	OnConfig func(hash []byte)
	// OnConnect is called on every connect (the bench).
	OnConnect func()
}

// Received is one remote config the agent got.
type Received struct {
	At   time.Time
	Hash []byte
	Body []byte
}

// Agent is a running simulated sidecar.
type Agent struct {
	o      AgentOptions
	client client.OpAMPClient

	connected atomic.Bool
	connects  atomic.Int64

	mu          sync.Mutex
	received    []Received
	serverErrs  []string
	connectErrs []string
	notify      chan struct{}
	lastHash    []byte
	// sinceConnect counts the dial attempts since the last connect (the
	// header is asked for once per attempt; opamp-go reports a failed one
	// to OnConnectFailed twice, so that is no count of attempts).
	sinceConnect int
	attempts     int
}

// Start connects the agent in the background.
func Start(ctx context.Context, o AgentOptions) (*Agent, error) {
	uid, err := uuid.Parse(o.UID)
	if err != nil {
		return nil, fmt.Errorf("agent uid: %w", err)
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 30 * time.Second
	}
	a := &Agent{o: o, notify: make(chan struct{}, 1)}
	if o.Apply == nil {
		a.o.Apply = DefaultApply
	}
	c := client.NewWebSocket(nil)
	a.client = c
	if err := c.SetAgentDescription(a.description()); err != nil {
		return nil, err
	}
	if err := c.SetHealth(a.health()); err != nil {
		return nil, err
	}
	caps := protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
		protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat
	if err := c.SetCapabilities(&caps); err != nil {
		return nil, err
	}
	if err := c.SetCustomCapabilities(&protobufs.CustomCapabilities{Capabilities: []string{FiguresCapability}}); err != nil {
		return nil, err
	}
	hb := o.Heartbeat
	err = c.Start(ctx, types.StartSettings{
		OpAMPServerURL:    o.URL,
		TLSConfig:         o.TLS,
		HeaderFunc:        a.header,
		InstanceUid:       types.InstanceUid(uid),
		HeartbeatInterval: &hb,
		Callbacks: types.Callbacks{
			OnConnect: func(context.Context) {
				a.connected.Store(true)
				a.connects.Add(1)
				a.mu.Lock()
				a.sinceConnect = 0
				a.mu.Unlock()
				if a.o.OnConnect != nil {
					a.o.OnConnect()
				}
			},
			OnConnectFailed: func(_ context.Context, err error) {
				a.connected.Store(false)
				a.mu.Lock()
				if len(a.connectErrs) < 100 {
					a.connectErrs = append(a.connectErrs, err.Error())
				}
				a.mu.Unlock()
			},
			OnError: func(_ context.Context, e *protobufs.ServerErrorResponse) {
				a.mu.Lock()
				a.serverErrs = append(a.serverErrs, e.GetErrorMessage())
				a.mu.Unlock()
				a.signal()
			},
			OnMessage:          a.onMessage,
			GetEffectiveConfig: a.effectiveConfig,
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) header(h http.Header) http.Header {
	a.mu.Lock()
	n := a.sinceConnect // failed attempts since the last connect
	a.attempts++
	a.sinceConnect++
	a.mu.Unlock()
	if a.o.Pace {
		if n > 0 {
			d := min(time.Second<<min(n-1, 9), 5*time.Minute)
			time.Sleep(d/2 + rand.N(d/2+1))
		}
	}
	if a.o.Token != nil {
		h.Set("Authorization", "Bearer "+a.o.Token())
	}
	return h
}

func (a *Agent) description() *protobufs.AgentDescription {
	kv := func(k, v string) *protobufs.KeyValue {
		return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
	}
	o := a.o
	d := &protobufs.AgentDescription{
		IdentifyingAttributes: []*protobufs.KeyValue{
			kv("service.name", "fargate-otel-collector"), kv("service.instance.id", o.UID), kv("service.version", o.Version),
			kv("k8s.pod.name", o.Pod), kv("k8s.pod.uid", o.UID), kv("k8s.namespace.name", o.Namespace),
		},
		NonIdentifyingAttributes: []*protobufs.KeyValue{
			kv("k8s.node.name", o.Node), kv("fargate-otel.injector.version", o.InjectorVersion),
			kv("fargate-otel.exporters.source", o.ExportersSource),
			kv("fargate-otel.bootstrap.config_hash", o.BootstrapHash), kv("fargate-otel.config_hash", o.ConfigHash),
		},
	}
	switch o.Kind {
	case "-":
	case "":
		d.IdentifyingAttributes = append(d.IdentifyingAttributes, kv("fargate-otel.kind", "sidecar"))
	default:
		d.IdentifyingAttributes = append(d.IdentifyingAttributes, kv("fargate-otel.kind", o.Kind))
	}
	return d
}

func (a *Agent) health() *protobufs.ComponentHealth {
	h := &protobufs.ComponentHealth{Healthy: a.o.Healthy, Status: "Running", LastError: a.o.LastError,
		StatusTimeUnixNano: uint64(time.Now().UnixNano())}
	if !a.o.Healthy {
		h.Status = "StandIn"
		h.ComponentHealthMap = map[string]*protobufs.ComponentHealth{
			"pipeline:logs": {Healthy: false, ComponentHealthMap: map[string]*protobufs.ComponentHealth{
				"exporter:otlp_grpc/gateway": {Healthy: false, LastError: a.o.LastError},
			}},
		}
	}
	return h
}

func (a *Agent) effectiveConfig(context.Context) (*protobufs.EffectiveConfig, error) {
	if a.o.EffectiveConfig == "" {
		return nil, nil
	}
	return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		"collector.yaml": {Body: []byte(a.o.EffectiveConfig), ContentType: "text/yaml"},
	}}}, nil
}

func (a *Agent) onMessage(_ context.Context, msg *types.MessageData) {
	rc := msg.RemoteConfig
	if rc == nil {
		return
	}
	f := rc.GetConfig().GetConfigMap()[sidecarconfig.OverridesConfigName]
	var body []byte
	if f != nil {
		body = f.GetBody()
	}
	a.mu.Lock()
	same := slices.Equal(a.lastHash, rc.GetConfigHash())
	a.lastHash = rc.GetConfigHash()
	a.received = append(a.received, Received{At: time.Now(), Hash: rc.GetConfigHash(), Body: body})
	a.mu.Unlock()
	if a.o.OnConfig != nil {
		a.o.OnConfig(rc.GetConfigHash())
	}
	a.signal()
	if same {
		return
	}
	status := protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED
	errMsg := ""
	sum := sha256.Sum256(body)
	err := a.o.Apply(body)
	if f == nil {
		err = errors.New("no " + sidecarconfig.OverridesConfigName + " file")
	} else if !slices.Equal(sum[:], rc.GetConfigHash()) {
		err = errors.New("the config hash is not the SHA-256 of the body")
	}
	if err != nil {
		status, errMsg = protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, err.Error()
	}
	_ = a.client.SetRemoteConfigStatus(&protobufs.RemoteConfigStatus{LastRemoteConfigHash: rc.GetConfigHash(), Status: status, ErrorMessage: errMsg})
}

// DefaultApply accepts live settings that parse and apply to the defaults.
func DefaultApply(body []byte) error {
	o, err := sidecarconfig.ParseOverrides(body)
	if err != nil {
		return err
	}
	_, err = o.Apply(sidecarconfig.Default())
	return err
}

func (a *Agent) signal() {
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// Connected says whether the agent's WebSocket is up (as far as it knows).
func (a *Agent) Connected() bool { return a.connected.Load() }

// Connects is how often it connected.
func (a *Agent) Connects() int64 { return a.connects.Load() }

// Received is every remote config so far.
func (a *Agent) Received() []Received {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.received)
}

// ServerErrors are the server's error responses so far.
func (a *Agent) ServerErrors() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.serverErrs)
}

// Attempts is how many times the agent dialled the server.
func (a *Agent) Attempts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts
}

// ConnectErrors are the failed connection attempts so far.
func (a *Agent) ConnectErrors() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.connectErrs)
}

// WaitConfig waits until a received config's body passes ok.
func (a *Agent) WaitConfig(ctx context.Context, ok func(Overrides sidecarconfig.Overrides) bool) (Received, error) {
	for {
		for _, r := range a.Received() {
			if o, err := sidecarconfig.ParseOverrides(r.Body); err == nil && ok(o) {
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return Received{}, fmt.Errorf("no matching live settings among %d received: %w", len(a.Received()), ctx.Err())
		case <-a.notify:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SendFigures sends a figures report now.
func (a *Agent) SendFigures(f registry.FiguresReport) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	for {
		ch, err := a.client.SendCustomMessage(&protobufs.CustomMessage{Capability: FiguresCapability, Type: FiguresMessageType, Data: data})
		if errors.Is(err, types.ErrCustomMessagePending) {
			<-ch
			continue
		}
		return err
	}
}

// SetHealth reports new health.
func (a *Agent) SetHealth(healthy bool, lastError string) error {
	a.o.Healthy, a.o.LastError = healthy, lastError
	return a.client.SetHealth(a.health())
}

// Stop disconnects the agent.
func (a *Agent) Stop(ctx context.Context) error { return a.client.Stop(ctx) }
