package pathfilter

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const logsPath = "/api/v1/nodes/node-a/proxy/containerLogs/shop/cart-7d9f8c6b5-x2k4p/app"

func TestAllowAcceptsContainerLogs(t *testing.T) {
	ptr := func(n int64) *int64 { return &n }
	since := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	sinceSec := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		query string
		want  LogQuery
	}{
		{"", LogQuery{}},
		{"follow=true", LogQuery{Follow: true}},
		{"follow=false", LogQuery{}},
		{"follow=true&timestamps=true", LogQuery{Follow: true, Timestamps: true}},
		{"timestamps=true&follow=true", LogQuery{Follow: true, Timestamps: true}},
		{"previous=true&tailLines=100", LogQuery{Previous: true, TailLines: ptr(100)}},
		{"tailLines=0", LogQuery{TailLines: ptr(0)}},
		{"limitBytes=1", LogQuery{LimitBytes: ptr(1)}},
		{"limitBytes=1099511627776", LogQuery{LimitBytes: ptr(1 << 40)}},
		{"tailLines=1000000000", LogQuery{TailLines: ptr(1_000_000_000)}},
		{"sinceTime=2026-01-02T03:04:05Z", LogQuery{SinceTime: &sinceSec}},
		{"sinceTime=2026-01-02T03:04:05.123456789Z", LogQuery{SinceTime: &since}},
		{"follow=true&timestamps=true&sinceTime=2026-01-02T03:04:05.123456789Z&previous=false&tailLines=5&limitBytes=65536",
			LogQuery{Follow: true, Timestamps: true, SinceTime: &since, TailLines: ptr(5), LimitBytes: ptr(65536)}},
	} {
		uri := logsPath
		if tc.query != "" {
			uri += "?" + tc.query
		}
		got, err := Allow("GET", uri)
		if err != nil {
			t.Errorf("Allow(GET, %q): %v", uri, err)
			continue
		}
		if got.Resource != ContainerLogs || got.Node != "node-a" || got.Namespace != "shop" || got.Pod != "cart-7d9f8c6b5-x2k4p" || got.Container != "app" {
			t.Errorf("Allow(GET, %q) = %+v", uri, got)
		}
		q := got.Logs
		if q.Follow != tc.want.Follow || q.Timestamps != tc.want.Timestamps || q.Previous != tc.want.Previous ||
			!eqInt(q.TailLines, tc.want.TailLines) || !eqInt(q.LimitBytes, tc.want.LimitBytes) || !eqTime(q.SinceTime, tc.want.SinceTime) {
			t.Errorf("query %q parsed as %+v, want %+v", tc.query, q, tc.want)
		}
		if got.UpstreamPath() != uri || q.Raw() != tc.query {
			t.Errorf("UpstreamPath() = %q, want the request target %q unchanged", got.UpstreamPath(), uri)
		}
	}
	// Dotted pod names (a StatefulSet of a dotted name) and longest names.
	long := "/api/v1/nodes/node-a/proxy/containerLogs/" + strings.Repeat("n", 63) + "/a.b-c.d/" + strings.Repeat("c", 63)
	if _, err := Allow("GET", long); err != nil {
		t.Errorf("Allow(GET, %q): %v", long, err)
	}
}

func eqInt(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func eqTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// TestAllowRefusesLogAttacks lists what a caller would try through the
// containerLogs allowance to reach another endpoint, or to make the proxy
// and the kubelet read one request two ways. (Whose pod it is, the handler
// checks; the filter only makes sure the names are names.)
func TestAllowRefusesLogAttacks(t *testing.T) {
	for _, tc := range []struct {
		name, method, uri, want string
	}{
		// other kubelet endpoints in the same shape
		{"exec", "GET", "/api/v1/nodes/node-a/proxy/exec/shop/a/app?command=id", "only stats/summary"},
		{"attach", "GET", "/api/v1/nodes/node-a/proxy/attach/shop/a/app?stdout=true", "only stats/summary"},
		{"query on stats", "GET", "/api/v1/nodes/node-a/proxy/stats/summary?follow=true", "served only on containerLogs"},
		{"query on pods", "GET", "/api/v1/nodes/node-a/proxy/pods?tailLines=1", "served only on containerLogs"},
		{"portforward", "GET", "/api/v1/nodes/node-a/proxy/portForward/shop/a", ""},
		{"run", "GET", "/api/v1/nodes/node-a/proxy/run/shop/a/app", ""},
		{"run POST", "POST", "/api/v1/nodes/node-a/proxy/run/shop/a/app", "only GET"},
		{"logs POST", "POST", logsPath, "only GET"},
		{"logs PUT", "PUT", logsPath, "only GET"},
		{"logs HEAD", "HEAD", logsPath, "only GET"},
		{"node logs", "GET", "/api/v1/nodes/node-a/proxy/logs/pods/shop_a_uid/app/0.log", ""},
		{"node logs query", "GET", "/api/v1/nodes/node-a/proxy/logs/?query=kubelet", ""},
		{"lower-case endpoint", "GET", "/api/v1/nodes/node-a/proxy/containerlogs/shop/a/app", ""},
		{"upper-case endpoint", "GET", "/api/v1/nodes/node-a/proxy/ContainerLogs/shop/a/app", ""},
		{"logs then exec", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/app/../../../../exec/shop/a/app", "expected containerLogs/"},
		{"dotdot pod", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/../app", "pod name"},
		{"dotdot namespace", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/../a/app", "namespace"},
		{"dot container", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/.", "container name"},
		// path shapes
		{"two names", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a", "expected containerLogs/"},
		{"four names", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/app/x", "expected containerLogs/"},
		{"bare", "GET", "/api/v1/nodes/node-a/proxy/containerLogs", ""},
		{"bare slash", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/", "expected containerLogs/"},
		{"trailing slash", "GET", logsPath + "/", "expected containerLogs/"},
		{"double slash", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop//a/app", "expected containerLogs/"},
		{"empty container", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/", "container name"},
		{"empty namespace", "GET", "/api/v1/nodes/node-a/proxy/containerLogs//a/app", "namespace"},
		{"dotted namespace", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/sh.op/a/app", "namespace"},
		{"dotted container", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/ap.p", "container name"},
		{"upper pod", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/A/app", "pod name"},
		{"underscore container", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/my_app", "container name"},
		{"namespace too long", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/" + strings.Repeat("n", 64) + "/a/app", "namespace"},
		{"container too long", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/" + strings.Repeat("c", 64), "container name"},
		{"pod too long", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/" + strings.Repeat("p", 254) + "/app", "pod name"},
		{"bad node", "GET", "/api/v1/nodes/Node-A/proxy/containerLogs/shop/a/app", "node name"},
		{"matrix", "GET", logsPath + ";follow=true", "container name"},
		{"backslash", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a\\..\\b/app", "pod name"},
		{"space", "GET", logsPath + " HTTP/1.1", "expected containerLogs/"},
		{"space only", "GET", logsPath + " x", "container name"},
		{"nul", "GET", logsPath + "\x00", "container name"},
		// encodings
		{"encoded slash in pod", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a%2F..%2Fb/app", "percent-encoding"},
		{"encoded slash lower", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop%2fa/app/x", "percent-encoding"},
		{"double encoded slash", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a%252Fb/app", "percent-encoding"},
		{"encoded dot", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/%2e%2e/app", "percent-encoding"},
		{"encoded letter", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a/%61pp", "percent-encoding"},
		{"encoded query value", "GET", logsPath + "?follow=%74rue", "percent-encoding"},
		{"encoded ampersand", "GET", logsPath + "?follow=true%26command=id", "percent-encoding"},
		{"encoded equals", "GET", logsPath + "?follow%3Dtrue", "percent-encoding"},
		{"encoded question", "GET", logsPath + "%3Ffollow=true", "percent-encoding"},
		{"fragment", "GET", logsPath + "#x", "fragments"},
		{"query then fragment", "GET", logsPath + "?follow=true#&command=id", "fragments"},
		{"unicode slash", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/shop/a\u2215b/app", "pod name"},
		// query keys
		{"empty query", "GET", logsPath + "?", "empty query"},
		{"unknown key", "GET", logsPath + "?command=id", "not served"},
		{"sinceSeconds", "GET", logsPath + "?sinceSeconds=60", "not served"},
		{"tail (kubelet alias)", "GET", logsPath + "?tail=10", "not served"},
		{"stream", "GET", logsPath + "?stream=Stdout", "not served"},
		{"insecureSkipTLSVerifyBackend", "GET", logsPath + "?insecureSkipTLSVerifyBackend=true", "not served"},
		{"container key", "GET", logsPath + "?container=other", "not served"},
		{"path key", "GET", logsPath + "?path=/exec", "not served"},
		{"upper key", "GET", logsPath + "?Follow=true", "not served"},
		{"key with space", "GET", logsPath + "?follow =true", "not served"},
		{"repeated key", "GET", logsPath + "?follow=true&follow=false", "twice"},
		{"repeated same value", "GET", logsPath + "?tailLines=1&tailLines=1", "twice"},
		{"repeated after others", "GET", logsPath + "?follow=true&timestamps=true&follow=true", "twice"},
		{"empty pair", "GET", logsPath + "?follow=true&&timestamps=true", "key=value"},
		{"trailing ampersand", "GET", logsPath + "?follow=true&", "key=value"},
		{"leading ampersand", "GET", logsPath + "?&follow=true", "key=value"},
		{"no value", "GET", logsPath + "?follow", "key=value"},
		{"empty key", "GET", logsPath + "?=true", "key=value"},
		{"semicolon separator", "GET", logsPath + "?follow=true;command=id", "expected true or false"},
		{"second question mark", "GET", logsPath + "?follow=true?command=id", "expected true or false"},
		{"query with slash", "GET", logsPath + "?follow=true/../../exec", "expected true or false"},
		// values
		{"empty bool", "GET", logsPath + "?follow=", "expected true or false"},
		{"bool 1", "GET", logsPath + "?follow=1", "expected true or false"},
		{"bool t", "GET", logsPath + "?timestamps=t", "expected true or false"},
		{"bool True", "GET", logsPath + "?previous=True", "expected true or false"},
		{"bool TRUE", "GET", logsPath + "?follow=TRUE", "expected true or false"},
		{"bool yes", "GET", logsPath + "?follow=yes", "expected true or false"},
		{"bool plus space", "GET", logsPath + "?follow=true+", "expected true or false"},
		{"bool two equals", "GET", logsPath + "?follow=true=false", "expected true or false"},
		{"tail negative", "GET", logsPath + "?tailLines=-1", "whole number"},
		{"tail plus", "GET", logsPath + "?tailLines=+5", "whole number"},
		{"tail leading zero", "GET", logsPath + "?tailLines=010", "whole number"},
		{"tail hex", "GET", logsPath + "?tailLines=0x10", "whole number"},
		{"tail float", "GET", logsPath + "?tailLines=1.5", "whole number"},
		{"tail exponent", "GET", logsPath + "?tailLines=1e3", "whole number"},
		{"tail huge", "GET", logsPath + "?tailLines=1000000001", "whole number"},
		{"tail overflow", "GET", logsPath + "?tailLines=99999999999999999999", "whole number"},
		{"tail all", "GET", logsPath + "?tailLines=all", "whole number"},
		{"tail empty", "GET", logsPath + "?tailLines=", "whole number"},
		{"tail underscore", "GET", logsPath + "?tailLines=1_000", "whole number"},
		{"limit zero", "GET", logsPath + "?limitBytes=0", "whole number"},
		{"limit negative", "GET", logsPath + "?limitBytes=-5", "whole number"},
		{"limit too big", "GET", logsPath + "?limitBytes=1099511627777", "whole number"},
		{"limit unit", "GET", logsPath + "?limitBytes=10Mi", "whole number"},
		{"since offset plus", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05+01:00", "RFC 3339"},
		{"since offset minus", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05-01:00", "RFC 3339"},
		{"since lower z", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05z", "RFC 3339"},
		{"since lower t", "GET", logsPath + "?sinceTime=2026-01-02t03:04:05Z", "RFC 3339"},
		{"since space", "GET", logsPath + "?sinceTime=2026-01-02 03:04:05Z", "RFC 3339"},
		{"since date only", "GET", logsPath + "?sinceTime=2026-01-02", "RFC 3339"},
		{"since unix", "GET", logsPath + "?sinceTime=1767322800", "RFC 3339"},
		{"since empty fraction", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05.Z", "RFC 3339"},
		{"since ten fraction digits", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05.1234567890Z", "RFC 3339"},
		{"since month 13", "GET", logsPath + "?sinceTime=2026-13-02T03:04:05Z", "RFC 3339"},
		{"since hour 24", "GET", logsPath + "?sinceTime=2026-01-02T24:04:05Z", "RFC 3339"},
		{"since feb 30", "GET", logsPath + "?sinceTime=2026-02-30T03:04:05Z", "RFC 3339"},
		{"since comma fraction", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05,5Z", "RFC 3339"},
		{"since trailing", "GET", logsPath + "?sinceTime=2026-01-02T03:04:05Zx", "RFC 3339"},
		{"since short year", "GET", logsPath + "?sinceTime=26-01-02T03:04:05Z", "RFC 3339"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Allow(tc.method, tc.uri)
			if err == nil {
				t.Fatalf("Allow(%q, %q) = %+v, want refused", tc.method, tc.uri, got)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("error %v does not wrap ErrRefused", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestLogQueryErrorsSayWhatIsServed(t *testing.T) {
	_, err := ParseLogQuery("sinceSeconds=5")
	if err == nil || !strings.Contains(err.Error(), "follow, timestamps, previous, sinceTime, tailLines, limitBytes") {
		t.Errorf("error %v should list the keys served", err)
	}
	_, err = ParseLogQuery("sinceTime=" + strings.Repeat("9", 5000))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("error for a long value should be clipped, got %d bytes", len(err.Error()))
	}
}
