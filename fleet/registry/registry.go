// Package registry is one fleet server replica's memory of the agents
// connected to it. What it keeps per agent is bounded, whatever an agent
// sends: attribute values, errors and component lists are capped, the
// figures are a small ring, and effective configs are capped and shared
// between agents that run the same one (a fleet runs few distinct configs).
// It is pure state: the server feeds it what agents report, the API reads
// it as api.Agent.
package registry

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

// Caps on what one agent may make the server keep.
const (
	MaxValueLen     = 256       // an attribute value
	MaxErrorLen     = 1024      // an error message
	MaxUnhealthy    = 16        // components listed as unhealthy
	MaxConfigLen    = 16 << 10  // an effective config (interned)
	FiguresRingSize = 8         // figures reports kept
	MaxFiguresLen   = 256 << 10 // a figures message accepted for parsing
)

// Identity is who an agent is, from its verified token: never from what
// the agent says.
type Identity struct {
	UID, Namespace, Pod, ServiceAccount string
	// Kind is api.KindSidecar ("" too) or api.KindGateway.
	Kind string
}

// Description is what an agent says about itself (capped by SetDescription).
type Description struct {
	Node, Cluster                     string
	CollectorVersion, InjectorVersion string
	ExportersSource                   string
	BootstrapHash, ConfigHash         string
}

// Registry holds the agents of one replica. Safe for concurrent use.
type Registry struct {
	replica string
	version string
	keep    time.Duration
	now     func() time.Time

	mu      sync.RWMutex
	agents  map[string]*entry
	configs map[string]*interned
}

type entry struct {
	id          Identity
	desc        Description
	conn        any
	connected   bool
	connectedAt time.Time
	lastSeen    time.Time
	health      api.Health
	remote      remoteState
	desired     string
	desiredErr  string
	effective   *interned
	ring        ring
	lastExport  map[string]time.Time
}

type remoteState struct {
	last, status, err string
}

type interned struct {
	key  string
	body string
	refs int
}

// Options of New.
type Options struct {
	// Replica is this server's pod name.
	Replica string
	// Version is the release: a sidecar of another version is stale.
	Version string
	// KeepDisconnected is how long an agent that disconnected stays in the
	// view (default 5m), so that one that is gone is seen as such.
	KeepDisconnected time.Duration
	// Now is for tests.
	Now func() time.Time
}

// New returns an empty registry.
func New(o Options) *Registry {
	if o.KeepDisconnected <= 0 {
		o.KeepDisconnected = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Registry{replica: o.Replica, version: o.Version, keep: o.KeepDisconnected, now: o.Now,
		agents: map[string]*entry{}, configs: map[string]*interned{}}
}

// Connect records a new connection of agent id and returns the connection
// it replaces (nil if none): the caller closes that one, so that an agent
// is connected once.
func (r *Registry) Connect(id Identity, conn any) (previous any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	e := r.agents[id.UID]
	if e == nil {
		e = &entry{}
		r.agents[id.UID] = e
	} else if e.connected && e.conn != conn {
		previous = e.conn
	}
	if id.Kind == "" {
		id.Kind = api.KindSidecar
	}
	e.id, e.conn, e.connected, e.connectedAt, e.lastSeen = id, conn, true, now, now
	return previous
}

// Disconnect marks the agent disconnected if conn is still its connection.
func (r *Registry) Disconnect(uid string, conn any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.agents[uid]; e != nil && e.conn == conn {
		e.connected, e.conn = false, nil
		e.lastSeen = r.now()
	}
}

// Conn is the agent's connection, nil when not connected.
func (r *Registry) Conn(uid string) any {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.agents[uid]; e != nil && e.connected {
		return e.conn
	}
	return nil
}

// update runs f on the agent's entry under the lock, if it is connected
// through conn.
func (r *Registry) update(uid string, conn any, f func(e *entry)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.agents[uid]
	if e == nil || e.conn != conn {
		return false
	}
	e.lastSeen = r.now()
	f(e)
	return true
}

// Seen records a message from the agent.
func (r *Registry) Seen(uid string, conn any) { r.update(uid, conn, func(*entry) {}) }

// SetDescription records what the agent says about itself.
func (r *Registry) SetDescription(uid string, conn any, d Description) {
	d = Description{
		Node: capStr(d.Node, MaxValueLen), Cluster: capStr(d.Cluster, MaxValueLen),
		CollectorVersion: capStr(d.CollectorVersion, MaxValueLen), InjectorVersion: capStr(d.InjectorVersion, MaxValueLen),
		ExportersSource: capStr(d.ExportersSource, MaxValueLen),
		BootstrapHash:   capStr(d.BootstrapHash, MaxValueLen), ConfigHash: capStr(d.ConfigHash, MaxValueLen),
	}
	r.update(uid, conn, func(e *entry) { e.desc = d })
}

// ExportersSource is what the agent said about its exporters.
func (r *Registry) ExportersSource(uid string) (Identity, string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.agents[uid]
	if e == nil {
		return Identity{}, "", false
	}
	return e.id, e.desc.ExportersSource, true
}

// SetHealth records the agent's health (already capped by HealthFrom).
func (r *Registry) SetHealth(uid string, conn any, h api.Health) {
	r.update(uid, conn, func(e *entry) { e.health = h })
}

// SetRemoteStatus records what the agent says about the last live settings.
func (r *Registry) SetRemoteStatus(uid string, conn any, hash, status, errMsg string) {
	r.update(uid, conn, func(e *entry) {
		e.remote = remoteState{last: capStr(hash, 128), status: status, err: capStr(errMsg, MaxErrorLen)}
	})
}

// RemoteStatus is the hash and status the agent last reported.
func (r *Registry) RemoteStatus(uid string) (hash, status string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.agents[uid]; e != nil {
		return e.remote.last, e.remote.status
	}
	return "", ""
}

// SetDesired records what the server wants the agent to run (a hash), or
// why it sends nothing.
func (r *Registry) SetDesired(uid string, hash, errMsg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.agents[uid]; e != nil {
		e.desired, e.desiredErr = hash, capStr(errMsg, MaxErrorLen)
	}
}

// SetEffectiveConfig records the (redacted) config the agent runs.
func (r *Registry) SetEffectiveConfig(uid string, conn any, body string) {
	if len(body) > MaxConfigLen {
		body = body[:MaxConfigLen] + "\n# [truncated by the fleet server]\n"
	}
	r.update(uid, conn, func(e *entry) {
		r.release(e.effective)
		e.effective = r.intern(body)
	})
}

// EffectiveConfig is the config agent uid last reported.
func (r *Registry) EffectiveConfig(uid string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.agents[uid]
	if e == nil || e.effective == nil {
		return "", false
	}
	return e.effective.body, true
}

// AddFigures records a figures report received now.
func (r *Registry) AddFigures(uid string, conn any, f FiguresReport) {
	r.update(uid, conn, func(e *entry) {
		e.ring.add(sampleOf(r.now(), f))
		e.lastExport = lastExports(e.lastExport, f.LastExport)
	})
}

func (r *Registry) intern(body string) *interned {
	c := r.configs[body]
	if c == nil {
		c = &interned{key: body, body: body}
		r.configs[body] = c
	}
	c.refs++
	return c
}

func (r *Registry) release(c *interned) {
	if c == nil {
		return
	}
	if c.refs--; c.refs <= 0 {
		delete(r.configs, c.key)
	}
}

// Sweep forgets agents disconnected for longer than KeepDisconnected.
func (r *Registry) Sweep() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	cut := r.now().Add(-r.keep)
	n := 0
	for uid, e := range r.agents {
		if !e.connected && e.lastSeen.Before(cut) {
			r.release(e.effective)
			delete(r.agents, uid)
			n++
		}
	}
	return n
}

// Len is the number of agents known (connected or not) and connected.
func (r *Registry) Len() (known, connected int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.agents {
		known++
		if e.connected {
			connected++
		}
	}
	return known, connected
}

// DistinctConfigs is the number of distinct effective configs kept.
func (r *Registry) DistinctConfigs() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.configs)
}

// Connected lists the uids of connected agents.
func (r *Registry) Connected() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.agents))
	for uid, e := range r.agents {
		if e.connected {
			out = append(out, uid)
		}
	}
	return out
}

// List is every agent as the API shows it, sorted.
func (r *Registry) List() []api.Agent {
	r.mu.RLock()
	out := make([]api.Agent, 0, len(r.agents))
	for _, e := range r.agents {
		out = append(out, r.view(e))
	}
	r.mu.RUnlock()
	api.Sort(out)
	return out
}

// Get is one agent as the API shows it.
func (r *Registry) Get(uid string) (api.Agent, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.agents[uid]
	if e == nil {
		return api.Agent{}, false
	}
	return r.view(e), true
}

func (r *Registry) view(e *entry) api.Agent {
	a := api.Agent{
		UID: e.id.UID, Kind: e.id.Kind, Namespace: e.id.Namespace, Pod: e.id.Pod,
		Node: e.desc.Node, Cluster: e.desc.Cluster,
		CollectorVersion: e.desc.CollectorVersion, InjectorVersion: e.desc.InjectorVersion,
		ExportersSource: e.desc.ExportersSource,
		BootstrapHash:   e.desc.BootstrapHash, ConfigHash: e.desc.ConfigHash,
		Replica: r.replica, Connected: e.connected, ConnectedAt: e.connectedAt, LastSeen: e.lastSeen,
		Health: e.health,
		RemoteConfig: api.RemoteConfig{
			Desired: e.desired, DesiredError: e.desiredErr,
			Last: e.remote.last, Status: e.remote.status, Error: e.remote.err,
		},
		Figures: e.ring.figures(),
	}
	if len(e.lastExport) > 0 {
		a.Figures.LastExport = maps.Clone(e.lastExport)
	}
	a.Health.Unhealthy = slices.Clone(a.Health.Unhealthy)
	if r.version != "" && ((a.CollectorVersion != "" && a.CollectorVersion != r.version) || (a.InjectorVersion != "" && a.InjectorVersion != r.version)) {
		a.Stale = append(a.Stale, api.StaleVersion)
	}
	if e.desired != "" && (e.remote.last != e.desired || e.remote.status != "APPLIED") {
		a.Stale = append(a.Stale, api.StaleConfig)
	}
	return a
}

func capStr(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// Cap shortens s to at most n bytes (plus an ellipsis).
func Cap(s string, n int) string { return capStr(s, n) }
