package nodeproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

const proxyToken = "proxy-own-credential"

type fakeAuth struct {
	mu      sync.Mutex
	callers map[string]callerauth.Caller
	err     error
	forgot  []string
	sources []string
}

func (f *fakeAuth) Authenticate(_ context.Context, token, source string) (callerauth.Caller, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sources = append(f.sources, source)
	if f.err != nil {
		return callerauth.Caller{}, false, f.err
	}
	c, ok := f.callers[token]
	if !ok {
		return callerauth.Caller{}, false, fmt.Errorf("%w: unknown", callerauth.ErrUnauthenticated)
	}
	return c, true, nil
}

func (f *fakeAuth) Forget(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, token)
}

type fakePods struct {
	pods   map[string]*callerauth.Pod
	others bool
	err    error
}

func (f *fakePods) Get(_ context.Context, ns, name string) (*callerauth.Pod, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.pods[ns+"/"+name], nil
}

func (f *fakePods) OthersOnNode(string, string) bool { return f.others }

// upstream stands in for the API server's nodes/proxy: it records what it
// was asked and checks the proxy's own credential.
type upstream struct {
	*httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	last    *http.Request
	status  int
	summary string
	pods    string
	// logs answers containerLogs: lines "<n> <container>" every logEvery,
	// logLines of them (follow: until the request ends); each line waits
	// for gate when it is set.
	logLines int
	logEvery time.Duration
	gate     chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{
		status:  http.StatusOK,
		summary: `{"node":{"nodeName":"node-a"},"pods":[{"podRef":{"name":"a","namespace":"ns","uid":"uid-a"},"cpu":{"usageNanoCores":1}},{"podRef":{"name":"b","namespace":"other","uid":"uid-b"}}]}`,
		pods:    `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"a","namespace":"ns","uid":"uid-a"},"spec":{"x":1}},{"metadata":{"name":"b","namespace":"other","uid":"uid-b"}}]}`,
	}
	u.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		u.mu.Lock()
		u.last = r.Clone(context.Background())
		u.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+proxyToken {
			http.Error(w, "upstream: wrong credential", http.StatusUnauthorized)
			return
		}
		if u.status != http.StatusOK {
			http.Error(w, `{"kind":"Status","message":"nodes \"node-a\" not found"}`, u.status)
			return
		}
		if c, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/node-a/proxy/containerLogs/ns/a/"); ok {
			u.serveLogs(w, r, c)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/nodes/node-a/proxy/stats/summary":
			_, _ = io.WriteString(w, u.summary)
		case "/api/v1/nodes/node-a/proxy/pods":
			_, _ = io.WriteString(w, u.pods)
		default:
			http.Error(w, "unexpected path "+r.URL.Path, http.StatusTeapot)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serveLogs(w http.ResponseWriter, r *http.Request, container string) {
	w.Header().Set("Content-Type", "text/plain")
	follow := r.URL.Query().Get("follow") == "true"
	for i := 0; follow || i < u.logLines; i++ {
		if u.gate != nil {
			select {
			case <-u.gate:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "%d %s\n", i, container); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		if u.logEvery > 0 {
			select {
			case <-time.After(u.logEvery):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// credTransport adds the proxy's own credential, as client-go's transport does.
type credTransport struct{ base http.RoundTripper }

func (c credTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+proxyToken)
	return c.base.RoundTrip(r)
}

type fixture struct {
	up    *upstream
	auth  *fakeAuth
	pods  *fakePods
	proxy *httptest.Server
	h     *Handler
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	up := newUpstream(t)
	f := &fixture{
		up: up,
		auth: &fakeAuth{callers: map[string]callerauth.Caller{
			"tok-a": {Namespace: "ns", ServiceAccount: "default", PodName: "a", PodUID: "uid-a"},
		}},
		pods: &fakePods{pods: map[string]*callerauth.Pod{
			"ns/a": {Namespace: "ns", Name: "a", UID: "uid-a", NodeName: "node-a", ServiceAccount: "default", Containers: []string{"app", "otel-collector", "init"}},
		}},
	}
	u, _ := url.Parse(up.URL)
	cfg := Config{
		Upstream:  u,
		Transport: credTransport{up.Client().Transport},
		Auth:      f.auth,
		Pods:      f.pods,
		Rate:      100,
		Burst:     100,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	f.proxy = httptest.NewServer(h)
	t.Cleanup(f.proxy.Close)
	return f
}

// do sends a raw request so that the target reaches the proxy unchanged.
func (f *fixture) do(t *testing.T, method, target, token string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.proxy.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target // sent verbatim as the request-target
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

const summaryPath = "/api/v1/nodes/node-a/proxy/stats/summary"

func TestForwardsOwnNodeSummaryWithProxyCredentials(t *testing.T) {
	f := newFixture(t, nil)
	code, body, hdr := f.do(t, "GET", summaryPath, "tok-a", map[string]string{
		"Impersonate-User":  "system:admin",
		"Impersonate-Group": "system:masters",
		"X-Remote-User":     "admin",
		"Cookie":            "session=1",
	})
	if code != 200 || body != f.up.summary {
		t.Fatalf("got %d %q, want the upstream summary unchanged", code, body)
	}
	if hdr.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
	}
	last := f.up.last
	if last.URL.RequestURI() != summaryPath || last.Method != "GET" {
		t.Fatalf("upstream got %s %s", last.Method, last.URL.RequestURI())
	}
	for _, h := range []string{"Impersonate-User", "Impersonate-Group", "X-Remote-User", "Cookie"} {
		if last.Header.Get(h) != "" {
			t.Errorf("caller header %s reached the API server", h)
		}
	}
	if strings.Contains(fmt.Sprint(last.Header), "tok-a") {
		t.Error("the caller's token reached the API server")
	}
	if n := f.up.calls.Load(); n != 1 {
		t.Errorf("%d upstream calls for one scrape", n)
	}
}

func TestFiltersToCallersPod(t *testing.T) {
	f := newFixture(t, nil)
	code, body, _ := f.do(t, "GET", "/api/v1/nodes/node-a/proxy/pods", "tok-a", nil)
	if code != 200 {
		t.Fatalf("pods: %d %s", code, body)
	}
	var list struct {
		Kind  string
		Items []struct {
			Metadata struct{ UID string }
			Spec     map[string]any
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "PodList" || len(list.Items) != 1 || list.Items[0].Metadata.UID != "uid-a" || list.Items[0].Spec["x"] != 1.0 {
		t.Fatalf("pods answer %s, want only the caller's pod, fields kept", body)
	}

	f.pods.others = true
	code, body, _ = f.do(t, "GET", summaryPath, "tok-a", nil)
	var s struct {
		Node map[string]any
		Pods []struct {
			PodRef struct{ UID string }
			CPU    map[string]any
		}
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil || code != 200 {
		t.Fatalf("summary %d %s %v", code, body, err)
	}
	if s.Node["nodeName"] != "node-a" || len(s.Pods) != 1 || s.Pods[0].PodRef.UID != "uid-a" || s.Pods[0].CPU == nil {
		t.Fatalf("summary on a shared node %s, want the node and only the caller's pod", body)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, token string
		setup                       func(*fixture)
		code                        int
		want                        string
	}{
		{"exec", "GET", "/api/v1/nodes/node-a/proxy/exec/ns/a/c?command=id", "tok-a", nil, 404, "only stats/summary"},
		{"node logs", "GET", "/api/v1/nodes/node-a/proxy/logs/pods/", "tok-a", nil, 404, "only stats/summary, pods and containerLogs"},
		{"logs of another pod", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/ns/b/app", "tok-a", nil, 403, "only its own containers' logs"},
		{"logs of another namespace", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/other/a/app", "tok-a", nil, 403, "only its own containers' logs"},
		{"logs of no such container", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/ns/a/debugger", "tok-a", nil, 403, "not a container of pod ns/a (its containers and init containers: app, otel-collector, init)"},
		{"logs on another node", "GET", "/api/v1/nodes/node-b/proxy/containerLogs/ns/a/app", "tok-a", nil, 403, "may read only"},
		{"logs with extra key", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/ns/a/app?follow=true&command=id", "tok-a", nil, 404, "not served"},
		{"logs without token", "GET", "/api/v1/nodes/node-a/proxy/containerLogs/ns/a/app", "", nil, 401, "no bearer token"},
		{"malformed token", "GET", summaryPath, "tok-a", func(f *fixture) {
			f.auth.err = fmt.Errorf("%w: %w: 1 dot-separated segments", callerauth.ErrUnauthenticated, callerauth.ErrMalformed)
		}, 401, "dot-separated"},
		{"review rate-limited", "GET", summaryPath, "tok-a", func(f *fixture) {
			f.auth.err = &callerauth.RateLimitError{Source: "127.0.0.1", QPS: 1, Burst: 10, RetryAfter: 1500 * time.Millisecond}
		}, 429, "too many unknown tokens from 127.0.0.1"},
		{"dotdot", "GET", "/api/v1/nodes/node-a/proxy/stats/summary/../../exec/ns/a/c", "tok-a", nil, 404, ""},
		{"encoded", "GET", "/api/v1/nodes/node-a/proxy/stats%2Fsummary", "tok-a", nil, 404, ""},
		{"POST", "POST", summaryPath, "tok-a", nil, 405, "only GET"},
		{"no token", "GET", summaryPath, "", nil, 401, "no bearer token"},
		{"bad token", "GET", summaryPath, "tok-x", nil, 401, "unauthenticated"},
		{"review down", "GET", summaryPath, "tok-a", func(f *fixture) { f.auth.err = errors.New("dial tcp: refused") }, 503, "retry later"},
		{"other node", "GET", "/api/v1/nodes/node-b/proxy/stats/summary", "tok-a", nil, 403, "may read only"},
		{"pod gone", "GET", summaryPath, "tok-a", func(f *fixture) { delete(f.pods.pods, "ns/a") }, 403, "does not exist"},
		{"pod lookup down", "GET", summaryPath, "tok-a", func(f *fixture) { f.pods.err = errors.New("timeout") }, 503, "retry later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if tc.setup != nil {
				tc.setup(f)
			}
			code, body, _ := f.do(t, tc.method, tc.target, tc.token, nil)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
			if n := f.up.calls.Load(); n != 0 {
				t.Fatalf("refused request reached the API server (%d calls)", n)
			}
			if strings.Contains(body, "dial tcp") || strings.Contains(body, "timeout") {
				t.Errorf("internal error detail leaked to the caller: %q", body)
			}
		})
	}
}

func TestPodGoneForgetsToken(t *testing.T) {
	f := newFixture(t, nil)
	delete(f.pods.pods, "ns/a")
	f.do(t, "GET", summaryPath, "tok-a", nil)
	if len(f.auth.forgot) != 1 || f.auth.forgot[0] != "tok-a" {
		t.Fatalf("forgot %v, want the token of the deleted pod", f.auth.forgot)
	}
}

func TestRateLimitPerCaller(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Rate = 0.001; c.Burst = 3 })
	f.auth.callers["tok-b"] = callerauth.Caller{Namespace: "ns", ServiceAccount: "default", PodName: "b", PodUID: "uid-b2"}
	f.pods.pods["ns/b"] = &callerauth.Pod{Namespace: "ns", Name: "b", UID: "uid-b2", NodeName: "node-a", ServiceAccount: "default"}
	for i := range 3 {
		if code, body, _ := f.do(t, "GET", summaryPath, "tok-a", nil); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}
	code, _, hdr := f.do(t, "GET", summaryPath, "tok-a", nil)
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("4th request: %d (Retry-After %q), want 429", code, hdr.Get("Retry-After"))
	}
	if code, _, _ := f.do(t, "GET", summaryPath, "tok-b", nil); code != 200 {
		t.Fatalf("another caller was limited too: %d", code)
	}
}

func TestUpstreamAnswers(t *testing.T) {
	f := newFixture(t, nil)
	f.up.status = http.StatusForbidden
	code, body, _ := f.do(t, "GET", summaryPath, "tok-a", nil)
	if code != 502 || !strings.Contains(body, "refused the proxy's own credentials") {
		t.Fatalf("upstream 403: got %d %q, want 502 naming the proxy's credentials", code, body)
	}
	f.up.status = http.StatusNotFound
	code, body, _ = f.do(t, "GET", summaryPath, "tok-a", nil)
	if code != 404 || !strings.Contains(body, "not found") {
		t.Fatalf("upstream 404: got %d %q, want it passed on", code, body)
	}
	f.up.Close()
	code, _, _ = f.do(t, "GET", summaryPath, "tok-a", nil)
	if code != 502 {
		t.Fatalf("upstream down: got %d, want 502", code)
	}
}

func TestNewHandlerValidates(t *testing.T) {
	ok := Config{Upstream: &url.URL{Scheme: "https", Host: "h"}, Transport: http.DefaultTransport, Auth: &fakeAuth{}, Pods: &fakePods{}}
	if _, err := NewHandler(ok); err != nil {
		t.Fatal(err)
	}
	withPath := ok
	withPath.Upstream = &url.URL{Scheme: "https", Host: "h", Path: "/prefix"}
	if _, err := NewHandler(withPath); err == nil {
		t.Error("an upstream URL with a path was accepted")
	}
	noAuth := ok
	noAuth.Auth = nil
	if _, err := NewHandler(noAuth); err == nil {
		t.Error("a config without authenticator was accepted")
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc", "Basic abc": "", "Bearer": "", "Bearer ": "", "abc": ""} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", in)
		got, ok := bearerToken(r)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Add("Authorization", "Bearer a")
	r.Header.Add("Authorization", "Bearer b")
	if _, ok := bearerToken(r); ok {
		t.Error("two Authorization headers were accepted")
	}
}

func TestReviewRefusedIsTheOperatorsProblem(t *testing.T) {
	f := newFixture(t, nil)
	f.auth.err = fmt.Errorf("%w: tokenreviews is forbidden", callerauth.ErrReviewRefused)
	code, body, _ := f.do(t, "GET", summaryPath, "tok-a", nil)
	if code != 502 || !strings.Contains(body, "proxy's own credentials") {
		t.Fatalf("got %d %q, want 502 naming the proxy's credentials", code, body)
	}
}
