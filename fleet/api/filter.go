package api

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Filter selects agents; the zero Filter selects all. The CLI's flags, the
// page's controls and the API's query parameters are the same fields.
type Filter struct {
	Namespace string
	// Kind keeps agents of that kind (KindSidecar or KindGateway).
	Kind string
	// Unhealthy, Stale and Dropping keep agents with that problem; several
	// together keep agents with any of them.
	Unhealthy bool
	Stale     bool
	Dropping  bool
	// Text keeps agents whose pod, namespace, node or hash contains it.
	Text string
}

// Match says whether a passes f.
func (f Filter) Match(a Agent) bool {
	if f.Namespace != "" && a.Namespace != f.Namespace {
		return false
	}
	if f.Kind != "" && a.Kind != f.Kind {
		return false
	}
	if f.Text != "" {
		t := strings.ToLower(f.Text)
		if !slices.ContainsFunc([]string{a.Pod, a.Namespace, a.Node, a.ConfigHash, a.UID}, func(s string) bool {
			return strings.Contains(strings.ToLower(s), t)
		}) {
			return false
		}
	}
	if !f.Unhealthy && !f.Stale && !f.Dropping {
		return true
	}
	return (f.Unhealthy && a.Unhealthy()) || (f.Stale && len(a.Stale) > 0) || (f.Dropping && a.Dropping())
}

// CheckKind says whether k is a kind a filter can keep ("" is any).
func CheckKind(k string) error {
	switch k {
	case "", KindSidecar, KindGateway:
		return nil
	}
	return fmt.Errorf("kind=%q: use %s or %s", k, KindSidecar, KindGateway)
}

// Apply returns the agents that pass f, in their order.
func (f Filter) Apply(agents []Agent) []Agent {
	out := make([]Agent, 0, len(agents))
	for _, a := range agents {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	return out
}

// Query is f as URL query parameters.
func (f Filter) Query() url.Values {
	q := url.Values{}
	if f.Namespace != "" {
		q.Set("namespace", f.Namespace)
	}
	if f.Text != "" {
		q.Set("q", f.Text)
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	for name, on := range map[string]bool{"unhealthy": f.Unhealthy, "stale": f.Stale, "dropping": f.Dropping} {
		if on {
			q.Set(name, "true")
		}
	}
	return q
}

// ParseFilter reads Query's parameters.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{Namespace: q.Get("namespace"), Text: q.Get("q"), Kind: q.Get("kind")}
	if err := CheckKind(f.Kind); err != nil {
		return Filter{}, err
	}
	for name, dst := range map[string]*bool{"unhealthy": &f.Unhealthy, "stale": &f.Stale, "dropping": &f.Dropping} {
		switch v := q.Get(name); v {
		case "", "false", "0":
		case "true", "1", "on":
			*dst = true
		default:
			return Filter{}, fmt.Errorf("%s=%q: use true or false", name, v)
		}
	}
	return f, nil
}

// Merge puts replicas' lists together: each sidecar once, the connected
// entry first (an agent that moved keeps a disconnected entry on its old
// replica for a while), else the one seen last; sorted by namespace, pod.
func Merge(lists ...[]Agent) []Agent {
	byUID := map[string]Agent{}
	for _, l := range lists {
		for _, a := range l {
			old, ok := byUID[a.UID]
			if !ok || better(a, old) {
				byUID[a.UID] = a
			}
		}
	}
	out := make([]Agent, 0, len(byUID))
	for _, a := range byUID {
		out = append(out, a)
	}
	Sort(out)
	return out
}

func better(a, b Agent) bool {
	if a.Connected != b.Connected {
		return a.Connected
	}
	return a.LastSeen.After(b.LastSeen)
}

// Sort orders agents by namespace, pod, uid.
func Sort(agents []Agent) {
	sort.Slice(agents, func(i, j int) bool {
		a, b := agents[i], agents[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.UID < b.UID
	})
}
