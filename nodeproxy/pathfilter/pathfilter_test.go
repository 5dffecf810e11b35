package pathfilter

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestAllowAccepts(t *testing.T) {
	for _, tc := range []struct {
		uri      string
		node     string
		resource Resource
	}{
		{"/api/v1/nodes/fargate-ip-192-168-1-10.eu-west-1.compute.internal/proxy/stats/summary", "fargate-ip-192-168-1-10.eu-west-1.compute.internal", StatsSummary},
		{"/api/v1/nodes/node-a/proxy/pods", "node-a", Pods},
		{"/api/v1/nodes/a/proxy/stats/summary", "a", StatsSummary},
		{"/api/v1/nodes/0/proxy/pods", "0", Pods},
		{"/api/v1/nodes/" + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "/proxy/pods", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), Pods},
	} {
		got, err := Allow("GET", tc.uri)
		if err != nil {
			t.Errorf("Allow(GET, %q): %v", tc.uri, err)
			continue
		}
		if got.Node != tc.node || got.Resource != tc.resource {
			t.Errorf("Allow(GET, %q) = %+v, want node %q resource %v", tc.uri, got, tc.node, tc.resource)
		}
		if got.UpstreamPath() != tc.uri {
			t.Errorf("UpstreamPath() = %q, want the request target %q unchanged", got.UpstreamPath(), tc.uri)
		}
	}
}

// TestAllowRefusesAttacks lists what an attacker holding a valid token would
// try in order to reach more than its own node's stats.
func TestAllowRefusesAttacks(t *testing.T) {
	const ok = "/api/v1/nodes/node-a/proxy/stats/summary"
	for _, tc := range []struct {
		name, method, uri string
	}{
		// other kubelet endpoints: what makes nodes/proxy dangerous
		{"exec", "GET", "/api/v1/nodes/node-a/proxy/exec/default/pod/c?command=id&stdout=1"},
		{"exec no query", "GET", "/api/v1/nodes/node-a/proxy/exec/default/pod/c"},
		{"attach", "GET", "/api/v1/nodes/node-a/proxy/attach/default/pod/c"},
		{"portforward", "GET", "/api/v1/nodes/node-a/proxy/portForward/default/pod"},
		{"portforward lower", "GET", "/api/v1/nodes/node-a/proxy/portforward/default/pod"},
		{"run", "POST", "/api/v1/nodes/node-a/proxy/run/default/pod/c"},
		{"run GET", "GET", "/api/v1/nodes/node-a/proxy/run/default/pod/c"},
		{"logs", "GET", "/api/v1/nodes/node-a/proxy/logs/"},
		{"logs file", "GET", "/api/v1/nodes/node-a/proxy/logs/syslog"},
		{"configz", "GET", "/api/v1/nodes/node-a/proxy/configz"},
		{"debug pprof", "GET", "/api/v1/nodes/node-a/proxy/debug/pprof/"},
		{"metrics", "GET", "/api/v1/nodes/node-a/proxy/metrics"},
		{"cadvisor", "GET", "/api/v1/nodes/node-a/proxy/metrics/cadvisor"},
		{"stats root", "GET", "/api/v1/nodes/node-a/proxy/stats"},
		{"stats container", "GET", "/api/v1/nodes/node-a/proxy/stats/default/pod/uid/c"},
		{"checkpoint", "POST", "/api/v1/nodes/node-a/proxy/checkpoint/default/pod/c"},
		{"healthz", "GET", "/api/v1/nodes/node-a/proxy/healthz"},
		{"proxy root", "GET", "/api/v1/nodes/node-a/proxy/"},
		{"proxy bare", "GET", "/api/v1/nodes/node-a/proxy"},
		// other API paths
		{"node object", "GET", "/api/v1/nodes/node-a"},
		{"nodes list", "GET", "/api/v1/nodes"},
		{"secrets", "GET", "/api/v1/namespaces/kube-system/secrets"},
		{"node status", "GET", "/api/v1/nodes/node-a/status"},
		{"service proxy", "GET", "/api/v1/namespaces/default/services/x/proxy/stats/summary"},
		{"pod proxy", "GET", "/api/v1/namespaces/default/pods/x/proxy/stats/summary"},
		{"root", "GET", "/"},
		{"empty", "GET", ""},
		{"star", "OPTIONS", "*"},
		{"absolute form", "GET", "https://10.0.0.1/api/v1/nodes/node-a/proxy/stats/summary"},
		{"no leading slash", "GET", "api/v1/nodes/node-a/proxy/stats/summary"},
		{"api v2", "GET", "/api/v2/nodes/node-a/proxy/stats/summary"},
		{"apis group", "GET", "/apis/v1/nodes/node-a/proxy/stats/summary"},
		// methods
		{"POST", "POST", ok},
		{"PUT", "PUT", ok},
		{"PATCH", "PATCH", ok},
		{"DELETE", "DELETE", ok},
		{"HEAD", "HEAD", ok},
		{"OPTIONS", "OPTIONS", ok},
		{"CONNECT", "CONNECT", ok},
		{"TRACE", "TRACE", ok},
		{"lower get", "get", ok},
		{"empty method", "", ok},
		{"method with space", "GET ", ok},
		// dot segments
		{"dotdot to exec", "GET", "/api/v1/nodes/node-a/proxy/stats/summary/../../exec/default/pod/c"},
		{"dotdot to other node", "GET", "/api/v1/nodes/node-a/proxy/../../node-b/proxy/stats/summary"},
		{"dotdot node", "GET", "/api/v1/nodes/../proxy/stats/summary"},
		{"dot node", "GET", "/api/v1/nodes/./proxy/stats/summary"},
		{"dot segment", "GET", "/api/v1/nodes/node-a/proxy/./stats/summary"},
		{"dotdot in prefix", "GET", "/api/v1/../v1/nodes/node-a/proxy/stats/summary"},
		{"dotdot after", "GET", "/api/v1/nodes/node-a/proxy/stats/summary/.."},
		{"backslash dotdot", "GET", "/api/v1/nodes/node-a/proxy/stats/..\\exec"},
		// encodings
		{"encoded slash", "GET", "/api/v1/nodes/node-a%2Fproxy%2Fexec/proxy/stats/summary"},
		{"encoded slash lower", "GET", "/api/v1/nodes/node-a/proxy/stats%2fsummary"},
		{"encoded dot", "GET", "/api/v1/nodes/node-a/proxy/stats/summary/%2e%2e/%2e%2e/exec"},
		{"encoded dot upper", "GET", "/api/v1/nodes/%2E%2E/proxy/stats/summary"},
		{"double encoded slash", "GET", "/api/v1/nodes/node-a/proxy/stats%252Fsummary"},
		{"double encoded dot", "GET", "/api/v1/nodes/node-a/proxy/%252e%252e/exec"},
		{"encoded letter", "GET", "/api/v1/nodes/node-a/proxy/stats/%73ummary"},
		{"encoded node letter", "GET", "/api/v1/nodes/node-%61/proxy/stats/summary"},
		{"overlong utf8 dot", "GET", "/api/v1/nodes/node-a/proxy/%c0%ae%c0%ae/exec"},
		{"encoded question", "GET", "/api/v1/nodes/node-a/proxy/stats/summary%3Fx"},
		{"encoded hash", "GET", "/api/v1/nodes/node-a/proxy/stats/summary%23"},
		{"encoded nul", "GET", "/api/v1/nodes/node-a/proxy/stats/summary%00"},
		{"raw nul", "GET", "/api/v1/nodes/node-a/proxy/stats/summary\x00"},
		{"unicode slash", "GET", "/api/v1/nodes/node-a/proxy/stats\u2215summary"},
		{"fullwidth dot node", "GET", "/api/v1/nodes/\uff0e\uff0e/proxy/stats/summary"},
		// query strings and fragments
		{"query", "GET", ok + "?only_cpu_and_memory=true"},
		{"empty query", "GET", ok + "?"},
		{"query target", "GET", "/api/v1/nodes/node-a/proxy/exec/ns/pod/c?x=/stats/summary"},
		{"query with path", "GET", "/api/v1/nodes/node-a/proxy/pods?path=/exec"},
		{"fragment", "GET", ok + "#x"},
		{"empty fragment", "GET", ok + "#"},
		{"matrix parameter", "GET", "/api/v1/nodes/node-a/proxy/stats/summary;exec"},
		{"node parameter", "GET", "/api/v1/nodes/node-a;x/proxy/stats/summary"},
		// trailing and doubled separators
		{"trailing slash", "GET", ok + "/"},
		{"trailing slashes", "GET", ok + "//"},
		{"pods trailing slash", "GET", "/api/v1/nodes/node-a/proxy/pods/"},
		{"trailing dot", "GET", ok + "."},
		{"trailing space", "GET", ok + " "},
		{"trailing tab", "GET", ok + "\t"},
		{"trailing newline", "GET", ok + "\n"},
		{"trailing crlf", "GET", ok + "\r\n"},
		{"suffix", "GET", ok + "x"},
		{"json suffix", "GET", ok + ".json"},
		{"double slash prefix", "GET", "//api/v1/nodes/node-a/proxy/stats/summary"},
		{"double slash inside", "GET", "/api/v1/nodes/node-a/proxy//stats/summary"},
		{"double slash node", "GET", "/api/v1/nodes//node-a/proxy/stats/summary"},
		{"double slash resource", "GET", "/api/v1/nodes/node-a/proxy/stats//summary"},
		{"empty node", "GET", "/api/v1/nodes//proxy/stats/summary"},
		{"backslash", "GET", "/api/v1/nodes/node-a/proxy/stats\\summary"},
		{"pods subpath", "GET", "/api/v1/nodes/node-a/proxy/pods/x"},
		{"summary subpath", "GET", "/api/v1/nodes/node-a/proxy/stats/summary/x"},
		{"two proxies", "GET", "/api/v1/nodes/node-a/proxy/proxy/stats/summary"},
		// case tricks
		{"upper node", "GET", "/api/v1/nodes/Node-A/proxy/stats/summary"},
		{"upper prefix", "GET", "/API/v1/nodes/node-a/proxy/stats/summary"},
		{"upper nodes", "GET", "/api/v1/Nodes/node-a/proxy/stats/summary"},
		{"upper proxy", "GET", "/api/v1/nodes/node-a/Proxy/stats/summary"},
		{"upper summary", "GET", "/api/v1/nodes/node-a/proxy/stats/Summary"},
		{"upper pods", "GET", "/api/v1/nodes/node-a/proxy/PODS"},
		// node names the API server would never accept
		{"node leading dash", "GET", "/api/v1/nodes/-a/proxy/stats/summary"},
		{"node trailing dash", "GET", "/api/v1/nodes/a-/proxy/stats/summary"},
		{"node leading dot", "GET", "/api/v1/nodes/.a/proxy/stats/summary"},
		{"node trailing dot", "GET", "/api/v1/nodes/a./proxy/stats/summary"},
		{"node double dot", "GET", "/api/v1/nodes/a..b/proxy/stats/summary"},
		{"node underscore", "GET", "/api/v1/nodes/a_b/proxy/stats/summary"},
		{"node colon port", "GET", "/api/v1/nodes/node-a:10250/proxy/stats/summary"},
		{"node scheme port", "GET", "/api/v1/nodes/https:node-a:10250/proxy/stats/summary"},
		{"node at", "GET", "/api/v1/nodes/user@node-a/proxy/stats/summary"},
		{"node space", "GET", "/api/v1/nodes/node a/proxy/stats/summary"},
		{"node too long", "GET", "/api/v1/nodes/" + strings.Repeat("a", 254) + "/proxy/stats/summary"},
		{"node with slash via proxy word", "GET", "/api/v1/nodes/node-a/proxy/x/proxy/stats/summary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Allow(tc.method, tc.uri)
			if err == nil {
				t.Fatalf("Allow(%q, %q) = %+v, want refused", tc.method, tc.uri, got)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("error %v does not wrap ErrRefused", err)
			}
		})
	}
}

func TestErrorsSayWhatIsServed(t *testing.T) {
	_, err := Allow("GET", "/api/v1/nodes/node-a/proxy/exec/x")
	if err == nil || !strings.Contains(err.Error(), "only stats/summary, pods and containerLogs/<namespace>/<pod>/<container> are served") {
		t.Errorf("error %v should name what is served", err)
	}
	_, err = Allow("GET", "/x/"+strings.Repeat("y", 10000))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("error for a long path should be clipped, got %d bytes", len(err.Error()))
	}
}

// allowedUpstream is the whole set of paths the proxy may ever request,
// written independently of the implementation.
var allowedUpstream = regexp.MustCompile(`^/api/v1/nodes/` + subdomain + `/proxy/(stats/summary|pods|containerLogs/` + label + `/` + subdomain + `/` + label + `(\?` + logOption + `(&` + logOption + `)*)?)$`)

const (
	label     = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	subdomain = label + `(\.` + label + `)*`
	logOption = `((follow|timestamps|previous)=(true|false)|tailLines=(0|[1-9][0-9]*)|limitBytes=[1-9][0-9]*|sinceTime=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z)`
)

// FuzzAllow asserts that whatever arrives, nothing outside the allowed set is
// ever forwarded, and that what is forwarded is what was asked for.
func FuzzAllow(f *testing.F) {
	for _, seed := range []string{
		"/api/v1/nodes/node-a/proxy/stats/summary",
		"/api/v1/nodes/node-a/proxy/pods",
		"/api/v1/nodes/node-a/proxy/exec/ns/pod/c?command=sh",
		"/api/v1/nodes/node-a/proxy/stats/summary/../../exec",
		"/api/v1/nodes/node-a%2Fproxy/proxy/stats/summary",
		"/api/v1/nodes/a..b/proxy/pods",
		"/api/v1/nodes/node-a/proxy/stats/summary?x#y",
		"/api/v1/nodes/node-a/proxy/containerLogs/ns/pod/c",
		"/api/v1/nodes/node-a/proxy/containerLogs/ns/pod/c?follow=true&timestamps=true&sinceTime=2026-01-02T03:04:05.123456789Z",
		"/api/v1/nodes/node-a/proxy/containerLogs/ns/pod/c?tailLines=10&limitBytes=4096&previous=false",
		"/api/v1/nodes/node-a/proxy/containerLogs/ns/pod/c?follow=true&follow=false",
		"/api/v1/nodes/node-a/proxy/containerLogs/ns/pod/c/../../../exec/ns/pod/c",
		"/api/v1/nodes/node-a/proxy/containerLogs/ns/pod%2Fc/x",
	} {
		f.Add("GET", seed)
	}
	f.Add("POST", "/api/v1/nodes/node-a/proxy/stats/summary")
	f.Fuzz(func(t *testing.T, method, uri string) {
		target, err := Allow(method, uri)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("error %v does not wrap ErrRefused", err)
			}
			return
		}
		if method != "GET" {
			t.Fatalf("method %q forwarded", method)
		}
		up := target.UpstreamPath()
		if !allowedUpstream.MatchString(up) || len(target.Node) > 253 || len(target.Pod) > 253 || len(target.Namespace) > 63 || len(target.Container) > 63 {
			t.Fatalf("forwarded %q (from %q), outside the allowed set", up, uri)
		}
		if up != uri {
			t.Fatalf("forwarded %q for request %q: the target must be forwarded unchanged", up, uri)
		}
		// The URL the forwarder builds from it must parse back to the same
		// path with no query, fragment or escaping.
		path, query, _ := strings.Cut(up, "?")
		u, perr := url.Parse("https://10.0.0.1:443" + up)
		if perr != nil || u.Path != path || u.RawPath != "" || u.RawQuery != query || u.Fragment != "" || u.EscapedPath() != path {
			t.Fatalf("upstream URL for %q re-parses as %+v (err %v)", up, u, perr)
		}
		if target.Resource != ContainerLogs && query != "" {
			t.Fatalf("query %q forwarded on %s", query, target.Resource)
		}
		if query != "" {
			// The kubelet's decoder must read each key once, with the
			// value that was validated.
			vals, verr := url.ParseQuery(query)
			if verr != nil {
				t.Fatalf("forwarded query %q does not parse: %v", query, verr)
			}
			for k, v := range vals {
				if len(v) != 1 || k+"="+v[0] != pairOf(query, k) {
					t.Fatalf("forwarded query %q decodes %s to %q", query, k, v)
				}
			}
		}
	})
}

// pairOf is the raw key=value pair of key in query.
func pairOf(query, key string) string {
	for _, p := range strings.Split(query, "&") {
		if strings.HasPrefix(p, key+"=") {
			return p
		}
	}
	return ""
}
