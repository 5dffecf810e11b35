package annotations

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// LogSource chooses where a captured container's logs come from:
//
//	auto  the default: wrap when the container's command is known (the
//	      spec, the command annotation, or the image's registry), else api
//	      where the pod can use it
//	wrap  the wrapper in front of the command (stdout and stderr apart);
//	      a container whose command is unknown is then not captured
//	api   the sidecar fargate-otel-follow reads the container's log from
//	      the kubelet, through the node proxy, even when the command is
//	      known (the kubelet merges the two streams: every line is stdout)
//
// One value for every captured container (api), or values by container
// (web=api,worker=wrap; * for the others), or the same as a JSON object.
const LogSource = Prefix + "log-source"

// Values of LogSource.
const (
	LogSourceAuto = "auto"
	LogSourceWrap = "wrap"
	LogSourceAPI  = "api"
)

// parseLogSource reads the value of LogSource into values by container
// name (AllContainers for every container), with a warning for each entry
// it ignores; the entries it keeps are used.
func parseLogSource(v string) (map[string]string, []string) {
	var warns []string
	warn := func(format string, args ...any) {
		warns = append(warns, fmt.Sprintf("annotation %s: %s", LogSource, fmt.Sprintf(format, args...)))
	}
	forms := fmt.Sprintf(`write %s, %s or %s for every captured container, or values by container such as web=%s,worker=%s (* for the others)`,
		LogSourceAuto, LogSourceWrap, LogSourceAPI, LogSourceAPI, LogSourceWrap)

	type entry struct{ name, value string }
	var entries []entry
	switch {
	case v == "":
		warn("empty; %s", forms)
		return nil, warns
	case strings.HasPrefix(v, "{"):
		var m map[string]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			warn("ignored: not a JSON object of strings (%v); %s", err, forms)
			return nil, warns
		}
		names := make([]string, 0, len(m))
		for name := range m {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			entries = append(entries, entry{name, m[name]})
		}
	case !strings.Contains(v, "="):
		entries = append(entries, entry{AllContainers, v})
	default:
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			name, value, ok := strings.Cut(item, "=")
			if !ok {
				warn("%q ignored: not NAME=VALUE; %s", item, forms)
				continue
			}
			entries = append(entries, entry{strings.TrimSpace(name), strings.TrimSpace(value)})
		}
	}

	out := map[string]string{}
	for _, e := range entries {
		if e.name != AllContainers {
			if errs := validation.IsDNS1123Label(e.name); len(errs) > 0 {
				warn("%q ignored: not a container name (%s); use * for every container", e.name, strings.Join(errs, "; "))
				continue
			}
		}
		switch e.value {
		case LogSourceAuto, LogSourceWrap, LogSourceAPI:
		default:
			warn("%s ignored (%s applies): %q is not %s, %s or %s", describeName(e.name), LogSourceAuto, e.value, LogSourceAuto, LogSourceWrap, LogSourceAPI)
			continue
		}
		if _, dup := out[e.name]; dup {
			warn("%s is given twice; the last value is used", describeName(e.name))
		}
		out[e.name] = e.value
	}
	if len(out) == 0 {
		return nil, warns
	}
	return out, warns
}
