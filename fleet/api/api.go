// Package api is the fleet server's read-only HTTP API: the JSON a replica
// serves about the sidecars connected to it (Agent), the fleet as the
// replicas' views merged (Fleet), the filters the CLI and the page offer,
// and a client for it. The CLI (`fargate-otel fleet`), `fargate-otel
// doctor`, the page and the e2e tests all read the fleet through this
// package.
package api

import (
	"time"
)

// Paths of the API.
const (
	// PathFleet is the merged view of every replica (on the local port).
	PathFleet = "/api/v1/fleet"
	// PathAgents is one replica's own agents (local port; peers read it
	// over TLS on the OpAMP port as PathPeerAgents).
	PathAgents = "/api/v1/agents"
	// PathPeerAgents is what a replica asks its peers for, on their TLS
	// port, with its own service account token.
	PathPeerAgents = "/internal/v1/agents"
	// PathAgentConfig + uid is the redacted effective config of one agent.
	PathAgentConfig = "/api/v1/agents/"
)

// Kinds of agents: a pod's collector sidecar, or a replica of the gateway
// Deployment. The fleet server derives the kind from the agent's verified
// service account, never from what the agent says.
const (
	KindSidecar = "sidecar"
	KindGateway = "gateway"
)

// Stale reasons.
const (
	// StaleVersion: the collector or the injector that made the pod is not
	// this release's.
	StaleVersion = "version"
	// StaleConfig: the sidecar does not run the live settings it should
	// (not applied yet, or failed).
	StaleConfig = "config"
)

// Agent is one agent (a sidecar or a gateway replica) as a replica sees it. Every string is capped by the
// server; no secret is ever in it (effective configs are redacted by the
// agent and again by the server, and live settings are shown by hash only).
type Agent struct {
	// UID is the pod's uid (the agent's instance_uid).
	UID string `json:"uid"`
	// Kind is KindSidecar or KindGateway (from the agent's token).
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Node      string `json:"node,omitempty"`
	Cluster   string `json:"cluster,omitempty"`

	CollectorVersion string `json:"collectorVersion,omitempty"`
	InjectorVersion  string `json:"injectorVersion,omitempty"`
	// ExportersSource is "cluster" or "configmap:<name>/<key>".
	ExportersSource string `json:"exportersSource,omitempty"`
	// BootstrapHash names the config of the pod's own settings (its status
	// annotation); ConfigHash the config the collector runs now.
	BootstrapHash string `json:"bootstrapHash,omitempty"`
	ConfigHash    string `json:"configHash,omitempty"`

	// Replica is the fleet server pod the agent is connected to.
	Replica     string    `json:"replica"`
	Connected   bool      `json:"connected"`
	ConnectedAt time.Time `json:"connectedAt"`
	LastSeen    time.Time `json:"lastSeen"`

	Health       Health       `json:"health"`
	RemoteConfig RemoteConfig `json:"remoteConfig"`
	Figures      Figures      `json:"figures"`

	// Stale lists StaleVersion and StaleConfig when they apply.
	Stale []string `json:"stale,omitempty"`
}

// Health is the agent's last reported health.
type Health struct {
	// Reported is false until the agent has said anything about it.
	Reported bool   `json:"reported"`
	Healthy  bool   `json:"healthy"`
	Status   string `json:"status,omitempty"`
	// LastError is the first error the agent reported (scrubbed by it).
	LastError string `json:"lastError,omitempty"`
	// Unhealthy lists the components that are not healthy (at most 16).
	Unhealthy []string `json:"unhealthy,omitempty"`
}

// RemoteConfig is where the agent stands with the live settings.
type RemoteConfig struct {
	// Desired is the hash (hex SHA-256 of the body) of what the server
	// wants the agent to run; empty when the server sends nothing.
	Desired string `json:"desired,omitempty"`
	// DesiredError says why nothing is sent (e.g. a namespace's exporters
	// ConfigMap that does not parse).
	DesiredError string `json:"desiredError,omitempty"`
	// Last is the hash the agent last reported about, with its Status
	// (APPLYING, APPLIED, FAILED, or UNSET) and Error.
	Last   string `json:"last,omitempty"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Figures are the agent's own figures, as rates over the last reports.
type Figures struct {
	// At is the time of the last report; zero when none came yet.
	At time.Time `json:"at"`
	// LinesPerSecond read from the pod's log files, over the window.
	LinesPerSecond float64 `json:"linesPerSecond"`
	// DropsPerSecond are lines the wrapper dropped, over the window.
	DropsPerSecond float64 `json:"dropsPerSecond"`
	// ExportFailuresPerSecond over the window, all signals together.
	ExportFailuresPerSecond float64 `json:"exportFailuresPerSecond"`
	// Totals since the sidecar started.
	LinesRead      int64 `json:"linesRead"`
	Dropped        int64 `json:"dropped"`
	ExportFailures int64 `json:"exportFailures"`
	QueueBytes     int64 `json:"queueBytes"`
	// LastExport is the time of the last successful export per signal
	// (logs, metrics, traces) the agent reported; a signal never exported
	// is absent. For a gateway, the figure that says its destinations
	// take what it sends.
	LastExport map[string]time.Time `json:"lastExport,omitempty"`
	// Window is the time the rates were computed over.
	Window Duration `json:"window"`
}

// Unhealthy says whether the agent needs a look: not connected, reported
// unhealthy, or its live settings failed.
func (a Agent) Unhealthy() bool {
	return !a.Connected || (a.Health.Reported && !a.Health.Healthy) || a.RemoteConfig.Status == "FAILED" || a.RemoteConfig.DesiredError != ""
}

// Dropping says whether the sidecar lost lines or failed exports lately.
func (a Agent) Dropping() bool {
	return a.Figures.DropsPerSecond > 0 || a.Figures.ExportFailuresPerSecond > 0
}

// Replica is one fleet server replica in a merged view.
type Replica struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Agents  int    `json:"agents"`
	// Error says why the replica's agents are missing from the view.
	Error string `json:"error,omitempty"`
}

// Fleet is the merged view: every replica's agents, each sidecar once.
type Fleet struct {
	// Version is the release of the replica that merged the view.
	Version  string    `json:"version"`
	Time     time.Time `json:"time"`
	Replicas []Replica `json:"replicas"`
	Agents   []Agent   `json:"agents"`
}

// Partial says whether a replica could not be read.
func (f Fleet) Partial() bool {
	for _, r := range f.Replicas {
		if r.Error != "" {
			return true
		}
	}
	return false
}

// AgentList is one replica's answer.
type AgentList struct {
	Replica string  `json:"replica"`
	Version string  `json:"version"`
	Agents  []Agent `json:"agents"`
}

// Duration is a time.Duration written as "30s".
type Duration time.Duration

// MarshalText writes d as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "1m30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
