package registry

import (
	"sort"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

// HealthFrom turns an agent's ComponentHealth into what the registry keeps:
// the top-level state, its error, and the names (with errors) of at most
// MaxUnhealthy unhealthy leaf components, depth first in name order.
func HealthFrom(h *protobufs.ComponentHealth) api.Health {
	if h == nil {
		return api.Health{}
	}
	out := api.Health{
		Reported:  true,
		Healthy:   h.GetHealthy(),
		Status:    capStr(h.GetStatus(), MaxValueLen),
		LastError: capStr(h.GetLastError(), MaxErrorLen),
	}
	var walk func(prefix string, m map[string]*protobufs.ComponentHealth, depth int)
	walk = func(prefix string, m map[string]*protobufs.ComponentHealth, depth int) {
		if depth > 4 {
			return
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if len(out.Unhealthy) >= MaxUnhealthy {
				return
			}
			c := m[k]
			name := k
			if prefix != "" {
				name = prefix + "/" + k
			}
			if len(c.GetComponentHealthMap()) > 0 {
				walk(name, c.GetComponentHealthMap(), depth+1)
				continue
			}
			if !c.GetHealthy() {
				s := name
				if e := c.GetLastError(); e != "" {
					s += ": " + e
				}
				out.Unhealthy = append(out.Unhealthy, capStr(s, MaxValueLen))
			}
		}
	}
	walk("", h.GetComponentHealthMap(), 0)
	return out
}
