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
// dots, double encoding, "..", "//", ";" parameters, case folding).
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
)

// String returns the kubelet path of the resource, without the leading slash.
func (r Resource) String() string {
	switch r {
	case StatsSummary:
		return "stats/summary"
	case Pods:
		return "pods"
	default:
		return fmt.Sprintf("Resource(%d)", int(r))
	}
}

// Target is an allowed request: which node's kubelet and which endpoint.
type Target struct {
	Node     string
	Resource Resource
}

// UpstreamPath is the API server path the proxy requests with its own
// credentials. It is built only from validated parts, so it equals the
// request target the caller sent.
func (t Target) UpstreamPath() string {
	return pathPrefix + t.Node + proxySegment + t.Resource.String()
}

const (
	pathPrefix   = "/api/v1/nodes/"
	proxySegment = "/proxy/"
	// maxNodeNameLength is the limit of a DNS-1123 subdomain, which is what
	// the API server enforces on Node names.
	maxNodeNameLength = 253
)

// ErrRefused is wrapped by every error Allow returns.
var ErrRefused = errors.New("refused")

// Allow returns the target of a request when method and requestURI (the raw
// request-target, as in http.Request.RequestURI) are one of the allowed
// shapes:
//
//	GET /api/v1/nodes/<node>/proxy/stats/summary
//	GET /api/v1/nodes/<node>/proxy/pods
//
// where <node> is a valid Node name. Anything else, including a query string
// or a fragment, is refused with an error that says why.
func Allow(method, requestURI string) (Target, error) {
	if method != "GET" {
		return Target{}, fmt.Errorf("%w: method %q: only GET is served", ErrRefused, clip(method))
	}
	if !strings.HasPrefix(requestURI, pathPrefix) {
		return Target{}, fmt.Errorf("%w: path %q: only %s<node>/proxy/{stats/summary,pods} is served", ErrRefused, clip(requestURI), pathPrefix)
	}
	if i := strings.IndexAny(requestURI, "?#%"); i >= 0 {
		return Target{}, fmt.Errorf("%w: path %q: query strings, fragments and percent-encoding are not served", ErrRefused, clip(requestURI))
	}
	rest := requestURI[len(pathPrefix):]
	node, resource, ok := strings.Cut(rest, proxySegment)
	if !ok {
		return Target{}, fmt.Errorf("%w: path %q: expected %s<node>/proxy/<endpoint>", ErrRefused, clip(requestURI), pathPrefix)
	}
	if err := validNodeName(node); err != nil {
		return Target{}, fmt.Errorf("%w: node name %q: %w", ErrRefused, clip(node), err)
	}
	var r Resource
	switch resource {
	case "stats/summary":
		r = StatsSummary
	case "pods":
		r = Pods
	default:
		return Target{}, fmt.Errorf("%w: kubelet endpoint %q: only stats/summary and pods are served", ErrRefused, clip(resource))
	}
	return Target{Node: node, Resource: r}, nil
}

// validNodeName checks a DNS-1123 subdomain: lower-case alphanumeric labels
// separated by dots, '-' inside labels, at most 253 characters. It is written
// out instead of imported so that the filter has no dependencies to audit.
func validNodeName(s string) error {
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
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("character %q is not allowed (lower-case letters, digits, '-' and '.')", c)
			}
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
