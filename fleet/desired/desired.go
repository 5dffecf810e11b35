// Package desired computes, without I/O, the live settings the fleet sends
// each sidecar: sidecarconfig.Overrides from the cluster's live settings
// (a ConfigMap of the release namespace that the chart renders from its
// values) and, for a pod whose exporters come from a ConfigMap of its own
// namespace, that ConfigMap. Nothing else ever goes into them: what a pod
// receives was written by a cluster admin or by its namespace.
package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// LiveConfigMap is the ConfigMap of the release namespace that holds the
// cluster's live settings, and its keys. A key left out (or empty) leaves
// that setting to each pod's own.
const (
	LiveConfigMap           = "fargate-otel-fleet-live"
	KeyExporters            = "exporters"
	KeyLogLevel             = "logLevel"
	KeyTraceSampling        = "traceSampling"
	KeyKubeletStatsInterval = "kubeletStatsInterval"
)

// SourceCluster is the exporters source of a pod that uses the cluster's
// exporters; SourceConfigMapPrefix starts that of a pod that names a
// ConfigMap of its namespace: configmap:<name>/<key>.
const (
	SourceCluster         = "cluster"
	SourceConfigMapPrefix = "configmap:"
)

// Source is where a pod's exporters come from.
type Source struct {
	// ConfigMap and Key name the exporters ConfigMap of the pod's own
	// namespace; empty ConfigMap means the cluster's exporters.
	ConfigMap, Key string
}

// String is the form of FARGATE_OTEL_EXPORTERS_SOURCE.
func (s Source) String() string {
	if s.ConfigMap == "" {
		return SourceCluster
	}
	return SourceConfigMapPrefix + s.ConfigMap + "/" + s.Key
}

// ParseSource reads FARGATE_OTEL_EXPORTERS_SOURCE as an agent reports it.
// Only a ConfigMap name and key are accepted: never a namespace, so that an
// agent can only ever point at its own namespace.
func ParseSource(s string) (Source, error) {
	if s == "" || s == SourceCluster {
		return Source{}, nil
	}
	rest, ok := strings.CutPrefix(s, SourceConfigMapPrefix)
	name, key, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return Source{}, fmt.Errorf("exporters source %q: want %q or %s<name>/<key>", s, SourceCluster, SourceConfigMapPrefix)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return Source{}, fmt.Errorf("exporters source %q: %q is not a ConfigMap name: %s", s, name, strings.Join(errs, "; "))
	}
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return Source{}, fmt.Errorf("exporters source %q: %q is not a ConfigMap key: %s", s, key, strings.Join(errs, "; "))
	}
	return Source{ConfigMap: name, Key: key}, nil
}

// Live are the cluster's live settings; nil or empty members leave the
// pods' own.
type Live struct {
	Exporters            []sidecarconfig.Exporter
	LogLevel             string
	TraceSampling        *float64
	KubeletStatsInterval *sidecarconfig.Duration
}

// ParseLive reads the live ConfigMap's data, every problem at once.
func ParseLive(data map[string]string) (Live, error) {
	var l Live
	var errs []error
	if v := strings.TrimSpace(data[KeyExporters]); v != "" && v != "[]" {
		exps, err := ParseExporters(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", KeyExporters, err))
		}
		l.Exporters = exps
	}
	l.LogLevel = strings.TrimSpace(data[KeyLogLevel])
	if l.LogLevel != "" && !slices.Contains(sidecarconfig.LogLevels, l.LogLevel) {
		errs = append(errs, fmt.Errorf("%s %q: use one of %s", KeyLogLevel, l.LogLevel, strings.Join(sidecarconfig.LogLevels, ", ")))
	}
	if v := strings.TrimSpace(data[KeyTraceSampling]); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			errs = append(errs, fmt.Errorf("%s %q: want a share from 0 to 1", KeyTraceSampling, v))
		} else {
			l.TraceSampling = &f
		}
	}
	if v := strings.TrimSpace(data[KeyKubeletStatsInterval]); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			errs = append(errs, fmt.Errorf("%s %q: want a duration of at least 1s, e.g. 30s", KeyKubeletStatsInterval, v))
		} else {
			sd := sidecarconfig.Duration(d)
			l.KubeletStatsInterval = &sd
		}
	}
	if len(errs) == 0 {
		if err := validate(l.overrides(nil)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Live{}, fmt.Errorf("live settings ConfigMap %s: %w", LiveConfigMap, errors.Join(errs...))
	}
	return l, nil
}

// ParseExporters reads an exporters list (the format of the Helm values'
// exporters and of a namespace's exporters ConfigMap) and checks that the
// collector would accept it.
func ParseExporters(data string) ([]sidecarconfig.Exporter, error) {
	specs, err := injector.ParseExporters([]byte(data))
	if err != nil {
		return nil, err
	}
	out := make([]sidecarconfig.Exporter, 0, len(specs))
	for _, s := range specs {
		e := sidecarconfig.Exporter{ID: s.ID, Config: s.Config}
		for _, sig := range s.Signals {
			e.Signals = append(e.Signals, sidecarconfig.Signal(sig))
		}
		out = append(out, e)
	}
	if err := validate(sidecarconfig.Overrides{Exporters: out}); err != nil {
		return nil, err
	}
	return out, nil
}

func (l Live) overrides(exporters []sidecarconfig.Exporter) sidecarconfig.Overrides {
	return sidecarconfig.Overrides{
		Exporters:            exporters,
		LogLevel:             l.LogLevel,
		TraceSampling:        l.TraceSampling,
		KubeletStatsInterval: l.KubeletStatsInterval,
	}
}

// validate applies o to the product's defaults with the signals its
// exporters serve (a pod with fewer signals needs fewer exporters): what
// fails there fails in every pod. What depends on a pod's own settings the
// agent checks before it swaps, and reports FAILED.
func validate(o sidecarconfig.Overrides) error {
	probe := sidecarconfig.Default()
	if len(o.Exporters) > 0 {
		probe.Signals = nil
		for _, sig := range sidecarconfig.AllSignals {
			for _, e := range o.Exporters {
				if len(e.Signals) == 0 || containsSignal(e.Signals, sig) {
					probe.Signals = append(probe.Signals, sig)
					break
				}
			}
		}
	}
	_, err := o.Apply(probe)
	return err
}

func containsSignal(s []sidecarconfig.Signal, sig sidecarconfig.Signal) bool {
	for _, v := range s {
		if v == sig {
			return true
		}
	}
	return false
}

// Namespace is what the server read of one exporters ConfigMap.
type Namespace struct {
	// Known is false until the ConfigMap was read once.
	Known bool
	// Data is the ConfigMap's data (nil when it does not exist).
	Data map[string]string
	// Err says why it could not be read (not found, forbidden).
	Err string
}

// Desired is what one agent should run.
type Desired struct {
	// Body is Overrides.Encode; Hash its SHA-256 (the config_hash sent).
	Body []byte
	Hash []byte
	// Error says why nothing is sent, or why what is sent is older than
	// the source (Body is then nil).
	Error string
}

// Hex is the hash as the API shows it.
func (d Desired) Hex() string { return hex.EncodeToString(d.Hash) }

// Compute is the desired live settings for a pod with exporters source src,
// given the cluster's live settings and (for a ConfigMap source) what was
// read of that ConfigMap in the pod's namespace.
func Compute(live Live, src Source, ns Namespace) Desired {
	exporters := live.Exporters
	if src.ConfigMap != "" {
		switch {
		case !ns.Known:
			return Desired{Error: fmt.Sprintf("ConfigMap %s not read yet", src.ConfigMap)}
		case ns.Err != "":
			return Desired{Error: ns.Err + "; the sidecar keeps its current exporters"}
		}
		v, ok := ns.Data[src.Key]
		if !ok {
			return Desired{Error: fmt.Sprintf("ConfigMap %s has no key %q; the sidecar keeps its current exporters", src.ConfigMap, src.Key)}
		}
		exps, err := ParseExporters(v)
		if err != nil {
			return Desired{Error: fmt.Sprintf("ConfigMap %s key %s: %v; nothing is sent, the sidecar keeps its current exporters", src.ConfigMap, src.Key, err)}
		}
		exporters = exps
	}
	o := live.overrides(exporters)
	if err := validate(o); err != nil {
		return Desired{Error: err.Error()}
	}
	body, err := o.Encode()
	if err != nil {
		return Desired{Error: err.Error()}
	}
	sum := sha256.Sum256(body)
	return Desired{Body: body, Hash: sum[:]}
}
