package sidecarconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Overrides are the settings the fleet changes while a sidecar runs, laid
// over the pod's own (its bootstrap settings, from the pod spec). The fleet
// server sends them to a sidecar's OpAMP agent as JSON; the agent renders
// Apply(bootstrap) and swaps its collector to the result. Each member that
// is set replaces the pod's; an empty Overrides gives the pod's own config.
type Overrides struct {
	// Exporters replace the pod's exporters (the cluster's, or those of the
	// namespace's exporters ConfigMap that the pod names).
	Exporters []Exporter `json:"exporters,omitempty"`
	// LogLevel is the collector's own log level (LogLevels).
	LogLevel string `json:"logLevel,omitempty"`
	// TraceSampling is the share of traces kept, 0 to 1.
	TraceSampling *float64 `json:"traceSampling,omitempty"`
	// KubeletStatsInterval is how often kubelet stats are read.
	KubeletStatsInterval *Duration `json:"kubeletStatsInterval,omitempty"`
	// LogParsing replaces the pod's log parsing whole (an empty one turns
	// parsing off). file_log keeps its offsets across the change: lines
	// already sent are not sent again, and the next ones are parsed anew.
	LogParsing *LogParsing `json:"logParsing,omitempty"`
}

// OverridesContentType is the content type of Overrides in an OpAMP
// AgentConfigFile.
const OverridesContentType = "application/json"

// OverridesConfigName is the name of the file that carries Overrides in an
// OpAMP AgentConfigMap.
const OverridesConfigName = "fargate-otel-overrides"

// ParseOverrides reads Overrides as the fleet writes them, refusing unknown
// members.
func ParseOverrides(data []byte) (Overrides, error) {
	var o Overrides
	if len(bytes.TrimSpace(data)) == 0 {
		return o, nil
	}
	if err := strictUnmarshal(data, &o); err != nil {
		return Overrides{}, fmt.Errorf("live settings: %w", err)
	}
	return o, nil
}

// Encode writes o as compact JSON ({} when empty).
func (o Overrides) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return nil, fmt.Errorf("encode live settings: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// IsZero reports whether o changes nothing.
func (o Overrides) IsZero() bool {
	return len(o.Exporters) == 0 && o.LogLevel == "" && o.TraceSampling == nil && o.KubeletStatsInterval == nil && o.LogParsing == nil
}

// Apply returns c with o laid over it, or an error that says what is wrong
// when the result is not a working config (c itself is never changed).
func (o Overrides) Apply(c Config) (Config, error) {
	if len(o.Exporters) > 0 {
		c.Exporters = slices.Clone(o.Exporters)
	}
	if o.LogLevel != "" {
		c.LogLevel = o.LogLevel
	}
	if o.TraceSampling != nil {
		c.TraceSampling = *o.TraceSampling
	}
	if o.KubeletStatsInterval != nil {
		c.KubeletStats.Interval = time.Duration(*o.KubeletStatsInterval)
	}
	if o.LogParsing != nil {
		c.LogParsing = o.LogParsing.clone()
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("the live settings do not give a working collector: %w", err)
	}
	return c, nil
}
