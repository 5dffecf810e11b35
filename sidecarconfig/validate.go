package sidecarconfig

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// ExporterTypes are the exporter types built into fargate-otel-collector
// (deprecated aliases included); a test checks them against the binary.
// A custom build with more exporters lists them here too (see the README).
var ExporterTypes = []string{"otlp_grpc", "otlp", "otlp_http", "otlphttp", "debug", "file"}

var componentType = regexp.MustCompile(`^[a-zA-Z][0-9a-zA-Z_]{0,62}$`)

// Validate reports every problem with c at once, each saying what to change.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Signals) == 0 {
		add("no signal enabled: enable at least one of %s", joinSignals(AllSignals))
	}
	for i, s := range c.Signals {
		if !slices.Contains(AllSignals, s) {
			add("unknown signal %q: use one of %s", s, joinSignals(AllSignals))
		} else if slices.Contains(c.Signals[:i], s) {
			add("signal %q is listed twice", s)
		}
	}

	seen := map[string]bool{}
	for _, e := range c.Exporters {
		if err := validateExporterID(e.ID); err != nil {
			errs = append(errs, err)
		}
		if seen[e.ID] {
			add("exporter %q is defined twice: give each exporter its own name (type/name)", e.ID)
		}
		seen[e.ID] = true
		for _, s := range e.Signals {
			if !slices.Contains(AllSignals, s) {
				add("exporter %q: unknown signal %q: use one of %s", e.ID, s, joinSignals(AllSignals))
			}
		}
	}
	for _, s := range c.Signals {
		if !slices.ContainsFunc(c.Exporters, func(e Exporter) bool { return e.sends(s) }) {
			add("signal %q has no exporter: add one, or disable the signal", s)
		}
	}

	if c.has(Logs) {
		if len(c.LogInclude) == 0 {
			add("logs are enabled but no log file is included: set the include globs (default %v)", DefaultLogInclude)
		}
		if !path.IsAbs(c.StorageDir) {
			add("storage directory %q must be an absolute path (default %s)", c.StorageDir, DefaultStorageDir)
		}
	}
	if c.has(Metrics) && !c.KubeletStats.Disabled {
		ep := c.KubeletStats.Endpoint
		if !strings.HasPrefix(ep, "https://") && !strings.HasPrefix(ep, "http://") {
			add("kubelet stats endpoint %q must be an http(s) URL, e.g. %s", ep, DefaultKubeletStatsEndpoint)
		}
		if c.KubeletStats.Interval <= 0 {
			add("kubelet stats interval %s must be positive (default %s)", c.KubeletStats.Interval, DefaultKubeletStatsInterval)
		}
	}
	if len(c.Signals) > 0 && (c.OTLP.GRPCEndpoint == "" || c.OTLP.HTTPEndpoint == "") {
		add("the OTLP receiver needs both endpoints (defaults %s and %s)", DefaultOTLPGRPCEndpoint, DefaultOTLPHTTPEndpoint)
	}
	if c.HealthCheckEndpoint == "" {
		add("the health check endpoint is empty (default %s)", DefaultHealthCheckEndpoint)
	}
	if c.MemoryLimitMiB < 0 || (c.MemoryLimitMiB > 0 && c.MemoryLimitMiB < MinMemoryLimitMiB) {
		add("memory limit %d MiB is too small for the collector: give the sidecar at least %d MiB", c.MemoryLimitMiB, MinMemoryLimitMiB)
	}

	if c.DrainTimeout < 0 {
		add("drain timeout %s is negative: use 0 to leave the drain out, or a duration below the pod's grace period (default %s)", c.DrainTimeout, DefaultDrainTimeout)
	}

	if !slices.Contains(LogLevels, c.LogLevel) {
		add("log level %q: use one of %s", c.LogLevel, strings.Join(LogLevels, ", "))
	}
	if !(c.TraceSampling >= 0 && c.TraceSampling <= 1) { // NaN too
		add("trace sampling %v must be a share from 0 to 1 (1 keeps every trace)", c.TraceSampling)
	}

	errs = append(errs, c.LogParsing.validate()...)
	errs = append(errs, c.validateDiskQueues()...)

	if len(errs) > 0 {
		return fmt.Errorf("invalid collector config: %w", errors.Join(errs...))
	}
	return nil
}

func validateExporterID(id string) error {
	typ, name, hasName := strings.Cut(id, "/")
	if !componentType.MatchString(typ) {
		return fmt.Errorf("exporter ID %q: the type must be letters, digits and _ (e.g. otlp_grpc/gateway)", id)
	}
	if hasName && (name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == '/' })) {
		return fmt.Errorf("exporter ID %q: the name after / must be non-empty, without spaces or /", id)
	}
	if !slices.Contains(ExporterTypes, typ) {
		return fmt.Errorf("exporter ID %q: type %q is not built into fargate-otel-collector (it has %s); see the README on adding a component",
			id, typ, strings.Join(ExporterTypes, ", "))
	}
	return nil
}

func joinSignals(s []Signal) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}
