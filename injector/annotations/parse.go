package annotations

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// minCollectorMemory is collectorconfig.MinMemoryLimitMiB (not imported:
// this package stays free of the collector's).
const minCollectorMemory = "64Mi"

// Options are the user's choices read from a pod's annotations. Nil and
// empty fields mean "not set": the injector's configuration decides.
type Options struct {
	Containers     []string
	SkipContainers []string

	// Command is the array form of the Command annotation; Commands the
	// object form, by container name.
	Command  []string
	Commands map[string][]string

	Logs, Metrics, Traces *bool

	LogFormat      string
	LogMaxSize     *resource.Quantity
	LogMaxBackups  *int
	LogsVolumeSize *resource.Quantity

	Exporters *ConfigMapRef

	CollectorResources *corev1.ResourceRequirements
	FargateSizing      string

	// Multiline and LogParser are the log parsing annotations' values by
	// container name (AllContainers for every container; "" for none).
	Multiline map[string]string
	LogParser map[string]string

	// LogSource is the log-source annotation's value by container name
	// (AllContainers for every container): auto, wrap or api.
	LogSource map[string]string

	// LogRateLimit is the log-rate-limit annotation's value by container
	// name (AllContainers for every container; a zero RateLimit for none).
	LogRateLimit map[string]RateLimit
}

// ConfigMapRef names a ConfigMap key in the pod's own namespace.
type ConfigMapRef struct {
	Name string
	Key  string
}

// Parse reads the user-settable annotations. Values that cannot be used are
// ignored with a warning that names the annotation and the expected form.
func Parse(ann map[string]string) (Options, []string) {
	var o Options
	var warns []string
	warn := func(key, format string, args ...any) {
		warns = append(warns, fmt.Sprintf("annotation %s ignored: %s", key, fmt.Sprintf(format, args...)))
	}

	keys := make([]string, 0, len(ann))
	for k := range ann {
		if strings.HasPrefix(k, Prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)

	for _, key := range keys {
		v := strings.TrimSpace(ann[key])
		switch key {
		case Inject, Status, FargateSizeBefore, FargateSizeAfter:
			// read elsewhere, or written by the injector
		case KubeletStats:
			warn(key, "the kubelet stats mode is chosen per namespace, by a cluster admin, with the namespace label %s (mode direct grants the pod's service account nodes/proxy)", KubeletStats)
		case Containers:
			o.Containers = splitList(v)
		case SkipContainers:
			o.SkipContainers = splitList(v)
		case Command:
			cmd, cmds, err := parseCommand(v)
			if err != nil {
				warn(key, "%v; write a JSON array such as [\"/app/server\",\"--port=8080\"] or an object such as {\"app\":[\"/app/server\"]}", err)
				continue
			}
			o.Command, o.Commands = cmd, cmds
		case Logs, Metrics, Traces:
			b, ok := parseSwitch(v)
			if !ok {
				warn(key, "%q is neither %q nor %q", v, Enabled, Disabled)
				continue
			}
			switch key {
			case Logs:
				o.Logs = &b
			case Metrics:
				o.Metrics = &b
			default:
				o.Traces = &b
			}
		case LogFormat:
			if v != "cri" && v != "raw" {
				warn(key, "%q is neither \"cri\" nor \"raw\"", v)
				continue
			}
			o.LogFormat = v
		case LogMaxSize, LogsVolumeSize:
			q, err := parsePositiveSize(v)
			if err != nil {
				warn(key, "%v; write a size such as 10Mi", err)
				continue
			}
			if key == LogMaxSize {
				o.LogMaxSize = &q
			} else {
				o.LogsVolumeSize = &q
			}
		case LogMaxBackups:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1000 {
				warn(key, "%q is not a whole number between 0 and 1000", v)
				continue
			}
			o.LogMaxBackups = &n
		case Exporters:
			ref, err := parseConfigMapRef(v)
			if err != nil {
				warn(key, "%v; write the name of a ConfigMap in the pod's namespace, optionally NAME/KEY (default key %s)", err, DefaultExportersKey)
				continue
			}
			o.Exporters = &ref
		case CollectorResources:
			var rr corev1.ResourceRequirements
			dec := json.NewDecoder(strings.NewReader(v))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rr); err != nil {
				warn(key, "%v; write JSON such as {\"requests\":{\"cpu\":\"50m\",\"memory\":\"128Mi\"},\"limits\":{\"memory\":\"256Mi\"}}", err)
				continue
			}
			if err := checkResources(rr); err != nil {
				warn(key, "%v", err)
				continue
			}
			o.CollectorResources = &rr
		case FargateSizing:
			if v != "fit" && v != "fixed" {
				warn(key, "%q is neither \"fit\" nor \"fixed\"", v)
				continue
			}
			o.FargateSizing = v
		case Multiline:
			var w []string
			o.Multiline, w = parseParsing(key, v, sidecarconfig.CheckMultiline)
			warns = append(warns, w...)
		case LogParser:
			var w []string
			o.LogParser, w = parseParsing(key, v, sidecarconfig.CheckParser)
			warns = append(warns, w...)
		case LogSource:
			var w []string
			o.LogSource, w = parseLogSource(v)
			warns = append(warns, w...)
		case LogRateLimit:
			var w []string
			o.LogRateLimit, w = parseLogRateLimit(v)
			warns = append(warns, w...)
		default:
			warns = append(warns, fmt.Sprintf("annotation %s is not one fargate-otel knows (typo?); known: %s", key, strings.Join(Known(), ", ")))
		}
	}
	return o, warns
}

// Known lists the annotations users may set, for messages and docs.
func Known() []string {
	return []string{Containers, SkipContainers, Command, Logs, Metrics, Traces, LogFormat,
		LogMaxSize, LogMaxBackups, LogsVolumeSize, Exporters, CollectorResources, FargateSizing, Multiline, LogParser, LogSource, LogRateLimit}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseSwitch(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case Enabled, "true", "on", "yes":
		return true, true
	case Disabled, "false", "off", "no":
		return false, true
	}
	return false, false
}

func parseCommand(v string) ([]string, map[string][]string, error) {
	if strings.HasPrefix(v, "{") {
		var m map[string][]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, nil, fmt.Errorf("not a JSON object of string arrays: %w", err)
		}
		for name, cmd := range m {
			if len(cmd) == 0 {
				return nil, nil, fmt.Errorf("the command of %q is empty", name)
			}
		}
		return nil, m, nil
	}
	var a []string
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		return nil, nil, fmt.Errorf("not a JSON array of strings: %w", err)
	}
	if len(a) == 0 {
		return nil, nil, fmt.Errorf("the command is empty")
	}
	return a, nil, nil
}

func parsePositiveSize(v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return q, fmt.Errorf("%q is not a size", v)
	}
	if q.Sign() <= 0 {
		return q, fmt.Errorf("%q is not positive", v)
	}
	return q, nil
}

func parseConfigMapRef(v string) (ConfigMapRef, error) {
	name, key, hasKey := strings.Cut(v, "/")
	if !hasKey {
		key = DefaultExportersKey
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return ConfigMapRef{}, fmt.Errorf("%q is not a ConfigMap name: %s", name, strings.Join(errs, "; "))
	}
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return ConfigMapRef{}, fmt.Errorf("%q is not a ConfigMap key: %s", key, strings.Join(errs, "; "))
	}
	return ConfigMapRef{Name: name, Key: key}, nil
}

func checkResources(rr corev1.ResourceRequirements) error {
	for _, list := range []corev1.ResourceList{rr.Requests, rr.Limits} {
		for name, q := range list {
			if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
				return fmt.Errorf("only cpu and memory may be set, not %s", name)
			}
			if q.Sign() < 0 {
				return fmt.Errorf("%s must not be negative", name)
			}
		}
	}
	if lim, ok := rr.Limits[corev1.ResourceMemory]; ok && lim.Cmp(resource.MustParse(minCollectorMemory)) < 0 {
		return fmt.Errorf("a memory limit of %s is below the %s the collector needs", lim.String(), minCollectorMemory)
	}
	for name, req := range rr.Requests {
		if lim, ok := rr.Limits[name]; ok && req.Cmp(lim) > 0 {
			return fmt.Errorf("the %s request %s is above its limit %s", name, req.String(), lim.String())
		}
	}
	return nil
}
