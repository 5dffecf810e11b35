// Package sinkapi is the query side of the in-cluster OTLP sink
// (e2e/images/otlpsink): the JSON it answers over HTTP, a client for it, and
// the readable summary that `make demo` prints. It has no Kubernetes
// dependency, so that the sink's image stays small; how a request reaches the
// sink (directly from the cluster's network namespace, or through the API
// server's service proxy) is the caller's Getter.
package sinkapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Paths the sink serves.
const (
	PathLogs    = "/logs"
	PathMetrics = "/metrics"
	PathSpans   = "/spans"
	PathSummary = "/summary"
	PathHealth  = "/healthz"
)

// Ports of the sink.
const (
	OTLPPort = 4317
	HTTPPort = 8080
)

// Resource attribute keys the filters and the summary use.
const (
	AttrNamespace = "k8s.namespace.name"
	AttrPod       = "k8s.pod.name"
	AttrContainer = "k8s.container.name"
	AttrStream    = "log.iostream"
	AttrService   = "service.name"
)

// Log is one log record with its resource.
type Log struct {
	Resource   map[string]any `json:"resource"`
	Attributes map[string]any `json:"attributes"`
	Body       string         `json:"body"`
	// Time is the record's timestamp (for container logs, the CRI time).
	Time     time.Time `json:"time"`
	Received time.Time `json:"received"`
}

// Stream is the record's log.iostream attribute (stdout or stderr).
func (l Log) Stream() string { return str(l.Attributes, AttrStream) }

// MetricSeries is one metric name from one resource, with how many times it
// arrived.
type MetricSeries struct {
	Name     string         `json:"name"`
	Resource map[string]any `json:"resource"`
	Count    int            `json:"count"`
	Last     time.Time      `json:"last"`
}

// Span is one span with its resource.
type Span struct {
	Name       string         `json:"name"`
	TraceID    string         `json:"traceId"`
	Resource   map[string]any `json:"resource"`
	Attributes map[string]any `json:"attributes"`
	Received   time.Time      `json:"received"`
}

// Filter selects by resource attributes; empty fields match everything.
type Filter struct {
	Namespace, Pod, Container string
}

// Query is the filter as URL query parameters.
func (f Filter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"namespace": f.Namespace, "pod": f.Pod, "container": f.Container} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// FilterFromQuery reads a filter back from query parameters.
func FilterFromQuery(q url.Values) Filter {
	return Filter{Namespace: q.Get("namespace"), Pod: q.Get("pod"), Container: q.Get("container")}
}

// Match says whether a resource passes the filter.
func (f Filter) Match(resource map[string]any) bool {
	return (f.Namespace == "" || str(resource, AttrNamespace) == f.Namespace) &&
		(f.Pod == "" || str(resource, AttrPod) == f.Pod) &&
		(f.Container == "" || str(resource, AttrContainer) == f.Container)
}

func str(m map[string]any, key string) string {
	switch v := m[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// Getter fetches path (with query) from the sink's HTTP port.
type Getter func(ctx context.Context, path string, query url.Values) ([]byte, error)

// HTTPGetter reaches the sink at baseURL (e.g. http://10.0.0.42:8080).
func HTTPGetter(baseURL string) Getter {
	client := &http.Client{Timeout: 30 * time.Second}
	return func(ctx context.Context, path string, query url.Values) ([]byte, error) {
		u := strings.TrimSuffix(baseURL, "/") + path
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
		}
		return body, nil
	}
}

// Client queries a sink.
type Client struct{ Get Getter }

// Logs returns the log records that pass f, in arrival order.
func (c Client) Logs(ctx context.Context, f Filter) ([]Log, error) {
	var out []Log
	return out, c.getJSON(ctx, PathLogs, f.Query(), &out)
}

// Metrics returns the metric series whose resource passes f.
func (c Client) Metrics(ctx context.Context, f Filter) ([]MetricSeries, error) {
	var out []MetricSeries
	return out, c.getJSON(ctx, PathMetrics, f.Query(), &out)
}

// Spans returns the spans whose resource passes f.
func (c Client) Spans(ctx context.Context, f Filter) ([]Span, error) {
	var out []Span
	return out, c.getJSON(ctx, PathSpans, f.Query(), &out)
}

// Summary is the sink's readable summary of everything it holds.
func (c Client) Summary(ctx context.Context) (string, error) {
	b, err := c.Get(ctx, PathSummary, nil)
	return string(b), err
}

func (c Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	b, err := c.Get(ctx, path, q)
	if err != nil {
		return fmt.Errorf("query the OTLP sink: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the OTLP sink's answer to %s: %w", path, err)
	}
	return nil
}

// Summarize renders what the sink holds for people: per pod and container,
// log lines per stream and the last one; per pod, the metric names; per
// service, the spans.
func Summarize(logs []Log, metrics []MetricSeries, spans []Span) string {
	var b strings.Builder
	type key struct{ ns, pod, container string }
	type streams struct {
		count map[string]int
		last  string
	}
	byContainer := map[key]*streams{}
	for _, l := range logs {
		k := key{str(l.Resource, AttrNamespace), str(l.Resource, AttrPod), str(l.Resource, AttrContainer)}
		s := byContainer[k]
		if s == nil {
			s = &streams{count: map[string]int{}}
			byContainer[k] = s
		}
		s.count[l.Stream()]++
		s.last = l.Body
	}
	fmt.Fprintf(&b, "logs: %d lines\n", len(logs))
	keys := make([]key, 0, len(byContainer))
	for k := range byContainer {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		return a.ns+"/"+a.pod+"/"+a.container < c.ns+"/"+c.pod+"/"+c.container
	})
	for _, k := range keys {
		s := byContainer[k]
		fmt.Fprintf(&b, "  %s/%s container %s: stdout %d, stderr %d; last: %q\n", k.ns, k.pod, k.container, s.count["stdout"], s.count["stderr"], s.last)
	}

	names := map[string]map[string]bool{}
	total := 0
	for _, m := range metrics {
		who := str(m.Resource, AttrNamespace) + "/" + str(m.Resource, AttrPod)
		if str(m.Resource, AttrPod) == "" {
			who = "service " + str(m.Resource, AttrService)
		}
		if names[who] == nil {
			names[who] = map[string]bool{}
		}
		names[who][m.Name] = true
		total += m.Count
	}
	fmt.Fprintf(&b, "metrics: %d received\n", total)
	for _, who := range sortedKeys(names) {
		var kubelet, other []string
		for _, n := range sortedKeys(names[who]) {
			if IsKubeletStat(n) {
				kubelet = append(kubelet, n)
			} else {
				other = append(other, n)
			}
		}
		fmt.Fprintf(&b, "  %s:\n", who)
		if len(kubelet) > 0 {
			writeWrapped(&b, fmt.Sprintf("    kubelet stats (%d): ", len(kubelet)), kubelet)
		}
		if len(other) > 0 {
			writeWrapped(&b, "    from the app: ", other)
		}
	}

	traces := map[string]bool{}
	spanNames := map[string]map[string]int{}
	for _, s := range spans {
		traces[s.TraceID] = true
		who := "service " + str(s.Resource, AttrService)
		if pod := str(s.Resource, AttrPod); pod != "" {
			who += " in " + str(s.Resource, AttrNamespace) + "/" + pod
		}
		if spanNames[who] == nil {
			spanNames[who] = map[string]int{}
		}
		spanNames[who][s.Name]++
	}
	fmt.Fprintf(&b, "spans: %d in %d traces\n", len(spans), len(traces))
	for _, who := range sortedKeys(spanNames) {
		var parts []string
		for _, n := range sortedKeys(spanNames[who]) {
			parts = append(parts, fmt.Sprintf("%s x%d", n, spanNames[who][n]))
		}
		fmt.Fprintf(&b, "  %s: %s\n", who, strings.Join(parts, ", "))
	}
	return b.String()
}

// IsKubeletStat says whether a metric name is one of the kubelet_stats
// receiver's.
func IsKubeletStat(name string) bool {
	for _, p := range []string{"k8s.pod.", "container.", "k8s.node.", "k8s.volume."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// writeWrapped writes lead and the words, comma-separated, in lines of at
// most about 100 characters, continued lines indented under the first word.
func writeWrapped(b *strings.Builder, lead string, words []string) {
	line := lead
	pad := strings.Repeat(" ", len(lead))
	for i, w := range words {
		if i < len(words)-1 {
			w += ","
		}
		if len(line)+len(w) > 100 && line != lead && line != pad {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = pad
		}
		line += w + " "
	}
	b.WriteString(strings.TrimRight(line, " ") + "\n")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
