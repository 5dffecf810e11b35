// Package pathfilter decides which requests the node proxy forwards to the
// API server's nodes/proxy subresource. It is the proxy's first line of
// defence: nodes/proxy GET reaches every kubelet endpoint, exec and attach
// included (kubernetes#119640), so anything not on a short allow-list must be
// refused before it gets near the API server.
//
// The filter works on the raw request target exactly as it arrived on the
// wire and never decodes or normalises it: a target is either byte-for-byte
// one of the allowed shapes or it is refused. That removes the whole family
// of tricks that rely on two parsers disagreeing (percent-encoded slashes and
// dots, double encoding, "..", "//", ";" parameters, case folding). The one
// query string served, the log options of containerLogs, is checked the same
// way: a short list of keys, each at most once, with values spelled exactly
// one way.
package pathfilter

import (
	"errors"
	"fmt"
	"strings"
)

// Resource is a kubelet endpoint the proxy serves.
type Resource int

const (
	// StatsSummary is the kubelet's /stats/summary (node, pod and container
	// stats), what the kubelet_stats receiver always reads.
	StatsSummary Resource = iota + 1
	// Pods is the kubelet's /pods, read by kubelet_stats only for extra
	// metadata; the proxy filters it to the caller's own pod.
	Pods
	// ContainerLogs is the kubelet's
	// /containerLogs/<namespace>/<pod>/<container>, the log of one
	// container (what pods/log reads); the handler allows only the
	// caller's own pod's containers.
	ContainerLogs
)

// String returns the kubelet path of the resource, without the leading slash.
func (r Resource) String() string {
	switch r {
	case StatsSummary:
		return "stats/summary"
	case Pods:
		return "pods"
	case ContainerLogs:
		return "containerLogs"
	default:
		return fmt.Sprintf("Resource(%d)", int(r))
	}
}

// Target is an allowed request: which node's kubelet and which endpoint.
type Target struct {
	Node     string
	Resource Resource
	// Namespace, Pod and Container name the container of a ContainerLogs
	// target (valid names, not yet checked against the caller).
	Namespace, Pod, Container string
	// Logs is the validated query of a ContainerLogs target.
	Logs LogQuery
}

// UpstreamPath is the API server path the proxy requests with its own
// credentials. It is built only from validated parts, so it equals the
// request target the caller sent.
func (t Target) UpstreamPath() string {
	if t.Resource == ContainerLogs {
		p := pathPrefix + t.Node + proxySegment + logsSegment + t.Namespace + "/" + t.Pod + "/" + t.Container
		if t.Logs.raw != "" {
			p += "?" + t.Logs.raw
		}
		return p
	}
	return pathPrefix + t.Node + proxySegment + t.Resource.String()
}

const (
	pathPrefix   = "/api/v1/nodes/"
	proxySegment = "/proxy/"
	logsSegment  = "containerLogs/"
	// maxNodeNameLength is the limit of a DNS-1123 subdomain, which is what
	// the API server enforces on Node names.
	maxNodeNameLength = 253
	maxLabelLength    = 63
)

// ErrRefused is wrapped by every error Allow returns.
var ErrRefused = errors.New("refused")

// Allow returns the target of a request when method and requestURI (the raw
// request-target, as in http.Request.RequestURI) are one of the allowed
// shapes:
//
//	GET /api/v1/nodes/<node>/proxy/stats/summary
//	GET /api/v1/nodes/<node>/proxy/pods
//	GET /api/v1/nodes/<node>/proxy/containerLogs/<namespace>/<pod>/<container>[?<query>]
//
// where <node> and <pod> are valid DNS subdomains, <namespace> and
// <container> valid DNS labels, and <query> the log options of ParseLogQuery.
// Anything else, including a query string on the stats paths, a fragment or
// a percent-escape anywhere, is refused with an error that says why.
func Allow(method, requestURI string) (Target, error) {
	if method != "GET" {
		return Target{}, fmt.Errorf("%w: method %q: only GET is served", ErrRefused, clip(method))
	}
	if !strings.HasPrefix(requestURI, pathPrefix) {
		return Target{}, fmt.Errorf("%w: path %q: only %s<node>/proxy/{%s} is served", ErrRefused, clip(requestURI), pathPrefix, served)
	}
	if i := strings.IndexAny(requestURI, "#%"); i >= 0 {
		return Target{}, fmt.Errorf("%w: path %q: fragments and percent-encoding are not served", ErrRefused, clip(requestURI))
	}
	path, query, hasQuery := strings.Cut(requestURI, "?")
	rest := path[len(pathPrefix):]
	node, resource, ok := strings.Cut(rest, proxySegment)
	if !ok {
		return Target{}, fmt.Errorf("%w: path %q: expected %s<node>/proxy/<endpoint>", ErrRefused, clip(requestURI), pathPrefix)
	}
	if err := validSubdomain(node); err != nil {
		return Target{}, fmt.Errorf("%w: node name %q: %w", ErrRefused, clip(node), err)
	}
	if logs, ok := strings.CutPrefix(resource, logsSegment); ok {
		return allowLogs(node, logs, query, hasQuery)
	}
	var r Resource
	switch resource {
	case "stats/summary":
		r = StatsSummary
	case "pods":
		r = Pods
	default:
		return Target{}, fmt.Errorf("%w: kubelet endpoint %q: only %s are served", ErrRefused, clip(resource), served)
	}
	if hasQuery {
		return Target{}, fmt.Errorf("%w: path %q: a query string is served only on containerLogs", ErrRefused, clip(requestURI))
	}
	return Target{Node: node, Resource: r}, nil
}

const served = "stats/summary, pods and containerLogs/<namespace>/<pod>/<container>"

// allowLogs checks the rest of a containerLogs target: exactly three names
// and a query of log options.
func allowLogs(node, names, query string, hasQuery bool) (Target, error) {
	parts := strings.Split(names, "/")
	if len(parts) != 3 {
		return Target{}, fmt.Errorf("%w: containerLogs path %q: expected containerLogs/<namespace>/<pod>/<container>", ErrRefused, clip(names))
	}
	ns, pod, container := parts[0], parts[1], parts[2]
	if err := validLabel(ns); err != nil {
		return Target{}, fmt.Errorf("%w: namespace %q: %w", ErrRefused, clip(ns), err)
	}
	if err := validSubdomain(pod); err != nil {
		return Target{}, fmt.Errorf("%w: pod name %q: %w", ErrRefused, clip(pod), err)
	}
	if err := validLabel(container); err != nil {
		return Target{}, fmt.Errorf("%w: container name %q: %w", ErrRefused, clip(container), err)
	}
	var q LogQuery
	if hasQuery {
		var err error
		if q, err = ParseLogQuery(query); err != nil {
			return Target{}, err
		}
	}
	return Target{Node: node, Resource: ContainerLogs, Namespace: ns, Pod: pod, Container: container, Logs: q}, nil
}

// validSubdomain checks a DNS-1123 subdomain (node and pod names):
// lower-case alphanumeric labels separated by dots, '-' inside labels, at
// most 253 characters. It is written out instead of imported so that the
// filter has no dependencies to audit.
func validSubdomain(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxNodeNameLength {
		return fmt.Errorf("longer than %d characters", maxNodeNameLength)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return errors.New("empty label (leading, trailing or double dot)")
		}
		if err := labelChars(label); err != nil {
			return err
		}
	}
	return nil
}

// validLabel checks a DNS-1123 label (namespace and container names): at
// most 63 lower-case letters, digits and '-', not at either end.
func validLabel(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxLabelLength {
		return fmt.Errorf("longer than %d characters", maxLabelLength)
	}
	return labelChars(s)
}

func labelChars(label string) error {
	if label[0] == '-' || label[len(label)-1] == '-' {
		return errors.New("starts or ends with '-'")
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("character %q is not allowed (lower-case letters, digits, '-', and '.' between labels of a node or pod name)", c)
		}
	}
	return nil
}

// clip keeps refused input short in errors and logs.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
