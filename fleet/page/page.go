// Package page renders the fleet page: one server-rendered HTML table of
// the sidecars, with a few lines of inline script that filter its rows in
// the browser. It loads nothing else (no external script, style or font),
// so it works through a port-forward on a closed network.
package page

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

//go:embed page.html.tmpl
var source string

var tmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"rate":  rate,
	"short": short,
	"ago":   ago,
	"join":  strings.Join,
}).Parse(source))

// Row is one agent (a sidecar or a gateway replica) as the page shows it.
type Row struct {
	api.Agent
	Unhealthy, Dropping, IsStale bool
	HealthText                   string
	ConfigText                   string
	Search                       string
}

type data struct {
	Fleet                             api.Fleet
	Rows                              []Row
	Filter                            api.Filter
	Total, Unhealthy, Stale, Dropping int
	Connected, Sidecars, Gateways     int
	Namespaces                        []string
	Kinds                             []string
	Generated                         string
}

// Render writes the page for view, with filter f preset in its controls.
func Render(w io.Writer, view api.Fleet, f api.Filter) error {
	d := data{Fleet: view, Filter: f, Total: len(view.Agents), Generated: view.Time.Format(time.RFC3339),
		Kinds: []string{api.KindSidecar, api.KindGateway}}
	seen := map[string]bool{}
	for _, a := range view.Agents {
		r := Row{Agent: a, Unhealthy: a.Unhealthy(), Dropping: a.Dropping(), IsStale: len(a.Stale) > 0}
		r.HealthText = healthText(a)
		r.ConfigText = configText(a)
		r.Search = strings.ToLower(strings.Join([]string{a.Namespace, a.Pod, a.Node, a.ConfigHash, a.UID, a.CollectorVersion}, " "))
		if a.Kind == api.KindGateway {
			d.Gateways++
		} else {
			d.Sidecars++
		}
		if r.Unhealthy {
			d.Unhealthy++
		}
		if r.IsStale {
			d.Stale++
		}
		if r.Dropping {
			d.Dropping++
		}
		if a.Connected {
			d.Connected++
		}
		if !seen[a.Namespace] {
			seen[a.Namespace] = true
			d.Namespaces = append(d.Namespaces, a.Namespace)
		}
		d.Rows = append(d.Rows, r)
	}
	return tmpl.Execute(w, d)
}

func healthText(a api.Agent) string {
	switch {
	case !a.Connected:
		return "disconnected"
	case !a.Health.Reported:
		return "unknown"
	case a.Health.Healthy:
		return "healthy"
	case a.Health.Status != "":
		return "unhealthy (" + a.Health.Status + ")"
	}
	return "unhealthy"
}

func configText(a api.Agent) string {
	rc := a.RemoteConfig
	switch {
	case a.Kind == api.KindGateway:
		return "the chart's config (a gateway is sent none)"
	case rc.DesiredError != "":
		return "not sent: " + rc.DesiredError
	case rc.Desired == "":
		return "own settings"
	case rc.Last == rc.Desired && rc.Status == "APPLIED":
		return "live settings applied"
	case rc.Last == rc.Desired && rc.Status == "FAILED":
		return "live settings failed: " + rc.Error
	case rc.Last == rc.Desired:
		return strings.ToLower(rc.Status)
	}
	return "live settings pending"
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
