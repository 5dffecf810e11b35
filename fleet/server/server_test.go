package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/fleettest"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/server"
	"github.com/fargate-otel/fargate-otel/fleet/sources"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// tokens is an Authenticator that knows a fixed set of tokens, as a
// TokenReview of pod-bound tokens would.
type tokens struct {
	mu     sync.Mutex
	caller map[string]callerauth.Caller
}

func (a *tokens) Authenticate(_ context.Context, token, _ string) (callerauth.Caller, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.caller[token]
	if !ok {
		return callerauth.Caller{}, false, fmt.Errorf("unknown token: %w", callerauth.ErrUnauthenticated)
	}
	return c, false, nil
}

func (*tokens) Forget(string) {}

type live struct{ l desired.Live }

func (s live) Get() (desired.Live, string) { return s.l, "" }

// noNamespaces: the agents here take the cluster's exporters.
type noNamespaces struct{}

func (noNamespaces) Want(sources.Key, string)          {}
func (noNamespaces) Release(sources.Key, string)       {}
func (noNamespaces) Get(sources.Key) desired.Namespace { return desired.Namespace{} }

// counter reads one sample of a counter vector from reg (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// serveTLS serves srv's OpAMP handler on a local TLS server and runs its
// push loop until the test ends; it returns the server, the agents' URL
// and the pool that trusts it.
func serveTLS(t *testing.T, srv *server.Server) (*httptest.Server, string, *x509.CertPool) {
	t.Helper()
	handler, connContext, err := srv.Attach()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/opamp", handler)
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.ConnContext = connContext
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Run(ctx)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return ts, "wss" + strings.TrimPrefix(ts.URL, "https") + "/v1/opamp", pool
}

// upgrade asks ts for a WebSocket upgrade with token, as an agent's dial
// does, and returns the answer (its body closed): what a refused agent is
// told.
func upgrade(t *testing.T, ts *httptest.Server, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/opamp", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// TestMaxAgents: a replica with MaxAgents 2 serves two real opamp-go
// agents, refuses the third with 503 and Retry-After (counted as
// connections_total{result="full"}, never listed, never sent settings), and
// takes it once one of the two has gone.
func TestMaxAgents(t *testing.T) {
	auth := &tokens{caller: map[string]callerauth.Caller{}}
	reg := registry.New(registry.Options{Replica: "fargate-otel-fleet-0", Version: "0.1.0"})
	prom := prometheus.NewRegistry()
	srv := server.New(server.Options{
		Auth: auth, Live: live{desired.Live{LogLevel: "warn"}}, Namespaces: noNamespaces{},
		Registry: reg, Metrics: server.NewMetrics(prom), Log: testr.New(t), MaxAgents: 2,
	})
	ts, url, pool := serveTLS(t, srv)

	type sidecar struct {
		uid, token string
		agent      *fleettest.Agent
		stop       func() error
	}
	start := func(i int) sidecar {
		uid, token := uuid.NewString(), fmt.Sprintf("token-%d", i)
		pod := fmt.Sprintf("cart-%d", i)
		auth.mu.Lock()
		auth.caller[token] = callerauth.Caller{Namespace: "shop", ServiceAccount: "cart", PodName: pod, PodUID: uid}
		auth.mu.Unlock()
		a, err := fleettest.Start(context.Background(), fleettest.AgentOptions{
			URL: url, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Token: func() string { return token },
			UID: uid, Namespace: "shop", Pod: pod, Node: "fargate-ip-10-0-0-1", Version: "0.1.0", InjectorVersion: "0.1.0",
			ExportersSource: desired.SourceCluster, ConfigHash: "b0075742a5e1d00d", Healthy: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		// Stop once: a second Stop of an opamp-go client waits for its
		// context to end.
		stop := sync.OnceValue(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return a.Stop(ctx)
		})
		t.Cleanup(func() { _ = stop() })
		return sidecar{uid: uid, token: token, agent: a, stop: stop}
	}
	connected := func(s sidecar) error {
		a, ok := reg.Get(s.uid)
		if !ok || !a.Connected {
			return fmt.Errorf("agent %s not listed as connected (%+v)", s.uid, a)
		}
		return nil
	}
	warn := func(o sidecarconfig.Overrides) bool { return o.LogLevel == "warn" }
	waitCtx, waitCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer waitCancel()

	// Under the limit: both served, listed and sent the live settings.
	served := []sidecar{start(0), start(1)}
	for _, s := range served {
		polltest.Until(t, 20*time.Second, "an agent under the limit is listed", func() error { return connected(s) })
		if _, err := s.agent.WaitConfig(waitCtx, warn); err != nil {
			t.Fatalf("an agent under the limit: %v", err)
		}
	}
	if n := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "accepted"); n != 2 {
		t.Errorf("accepted connections %v, want 2", n)
	}

	// Past it: refused before its token is even reviewed, and counted.
	extra := start(2)
	polltest.Until(t, 20*time.Second, "the agent past the limit is refused", func() error {
		if n := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "full"); n < 1 {
			return fmt.Errorf("full refusals %v", n)
		}
		if len(extra.agent.ConnectErrors()) == 0 {
			return errors.New("the agent saw no failed connect")
		}
		return nil
	})
	if extra.agent.Connected() || extra.agent.Connects() != 0 {
		t.Errorf("the agent past the limit connected (%d times)", extra.agent.Connects())
	}
	if _, ok := reg.Get(extra.uid); ok {
		t.Errorf("the agent past the limit is listed")
	}
	if got := extra.agent.Received(); len(got) != 0 {
		t.Errorf("the agent past the limit was sent %d live settings", len(got))
	}
	// What it is told: 503 with Retry-After, which opamp-go honours.
	full := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "full")
	resp := upgrade(t, ts, extra.token)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("a connection past the limit: %s, Retry-After %q; want 503 with Retry-After 5", resp.Status, resp.Header.Get("Retry-After"))
	}
	if n := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "full"); n != full+1 {
		t.Errorf("full refusals %v after one more refused connection, were %v", n, full)
	}
	// The two served are still connected, and no more were accepted.
	for _, s := range served {
		if err := connected(s); err != nil {
			t.Error(err)
		}
	}
	if n := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "accepted"); n != 2 {
		t.Errorf("accepted connections %v, want 2", n)
	}

	// The limit counts live connections: once one goes, the refused agent
	// gets in at its next try (after the Retry-After).
	if err := served[0].stop(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	polltest.Until(t, 30*time.Second, "the refused agent gets in once there is room", func() error { return connected(extra) })
	t.Logf("the refused agent got in %v after a connection closed (Retry-After: 5s)", time.Since(t0).Round(10*time.Millisecond))
	if _, err := extra.agent.WaitConfig(waitCtx, warn); err != nil {
		t.Fatalf("the agent let in: %v", err)
	}
}

// TestReviewBoundTellsAgentsWhenToComeBack: agents that arrive at once,
// more than the replica reviews per second (the real callerauth, its bound
// set to 4/s with a burst of 2), are refused with 429 and a Retry-After of
// their own slot (counted as review_rate_limited, not logged as faults),
// and all of them get in, most at their second attempt.
func TestReviewBoundTellsAgentsWhenToComeBack(t *testing.T) {
	auth, err := callerauth.New(fleettest.Review, callerauth.Options{Audience: server.Audience,
		ReviewQPS: 4, ReviewBurst: 2, SourceQPS: 1e6, SourceBurst: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Options{Replica: "fargate-otel-fleet-0", Version: "0.1.0"})
	prom := prometheus.NewRegistry()
	srv := server.New(server.Options{
		Auth: auth, Live: live{desired.Live{LogLevel: "warn"}}, Namespaces: noNamespaces{},
		Registry: reg, Metrics: server.NewMetrics(prom), Log: testr.New(t),
	})
	ts, url, pool := serveTLS(t, srv)

	// What a refused connection is told, with the bucket spent: the slots
	// of agents refused one after the other move on at the bound's rate.
	var afters []string
	for i := range 10 {
		resp := upgrade(t, ts, fleettest.ProjectedToken("shop", fmt.Sprintf("probe-%d", i), uuid.NewString()))
		if resp.StatusCode == http.StatusTooManyRequests {
			afters = append(afters, resp.Header.Get("Retry-After"))
		}
	}
	// The burst of 2 lets at most 2 (and what refilled) through to a review.
	if len(afters) < 6 || afters[0] != "1" || afters[len(afters)-1] < "2" {
		t.Errorf("Retry-After of the refused probes %q: want at least 6, from 1 moving on at 4/s", afters)
	}

	const n = 12
	agents := make([]*fleettest.Agent, n)
	uids := make([]string, n)
	for i := range n {
		uid, pod := uuid.NewString(), fmt.Sprintf("cart-%d", i)
		token := fleettest.ProjectedToken("shop", pod, uid)
		a, err := fleettest.Start(context.Background(), fleettest.AgentOptions{
			URL: url, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Token: func() string { return token },
			UID: uid, Namespace: "shop", Pod: pod, Node: "fargate-ip-10-0-0-1", Version: "0.1.0", InjectorVersion: "0.1.0",
			ExportersSource: desired.SourceCluster, ConfigHash: "b0075742a5e1d00d", Healthy: true, Pace: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.Stop(ctx)
		})
		agents[i], uids[i] = a, uid
	}
	t0 := time.Now()
	polltest.Until(t, 60*time.Second, "every agent gets in", func() error {
		for i, uid := range uids {
			if a, ok := reg.Get(uid); !ok || !a.Connected {
				return fmt.Errorf("agent %d not connected (%d attempts)", i, agents[i].Attempts())
			}
		}
		return nil
	})
	limited := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "review_rate_limited")
	if limited < n/2 {
		t.Errorf("%v connections refused by the review bound, want at least %d of the %d agents'", limited, n/2, n)
	}
	if failed := counter(t, prom, "fargate_otel_fleet_connections_total", "result", "review_failed"); failed != 0 {
		t.Errorf("%v connections counted as review_failed: the bound is not a failure", failed)
	}
	attempts := 0
	for _, a := range agents {
		attempts += a.Attempts()
	}
	t.Logf("%d agents in after %v, %d attempts in all, %v refused by the review bound (4/s, burst 2)", n, time.Since(t0).Round(10*time.Millisecond), attempts, limited)
	if attempts > 3*n {
		t.Errorf("%d attempts for %d agents: the agents did not come back at their slots", attempts, n)
	}
}

// TestTheNodeIsTheTokens: where the API server bound the node into the
// agent's token, the list shows that node, whatever the agent says; without
// one, what the agent says.
func TestTheNodeIsTheTokens(t *testing.T) {
	auth := &tokens{caller: map[string]callerauth.Caller{}}
	reg := registry.New(registry.Options{Replica: "fargate-otel-fleet-0", Version: "0.1.0"})
	srv := server.New(server.Options{
		Auth: auth, Live: live{desired.Live{LogLevel: "warn"}}, Namespaces: noNamespaces{},
		Registry: reg, Metrics: server.NewMetrics(prometheus.NewRegistry()), Log: testr.New(t),
	})
	_, url, pool := serveTLS(t, srv)

	for _, tc := range []struct{ tokenNode, says, want string }{
		{tokenNode: "fargate-ip-10-0-0-1", says: "fargate-ip-10-9-9-9", want: "fargate-ip-10-0-0-1"},
		{tokenNode: "", says: "fargate-ip-10-0-0-2", want: "fargate-ip-10-0-0-2"},
	} {
		uid, token, pod := uuid.NewString(), uuid.NewString(), "cart-"+tc.want
		auth.mu.Lock()
		auth.caller[token] = callerauth.Caller{Namespace: "shop", ServiceAccount: "cart", PodName: pod, PodUID: uid, NodeName: tc.tokenNode}
		auth.mu.Unlock()
		a, err := fleettest.Start(context.Background(), fleettest.AgentOptions{
			URL: url, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Token: func() string { return token },
			UID: uid, Namespace: "shop", Pod: pod, Node: tc.says, Version: "0.1.0", InjectorVersion: "0.1.0",
			ExportersSource: desired.SourceCluster, ConfigHash: "b0075742a5e1d00d", Healthy: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.Stop(ctx)
		})
		polltest.Until(t, 20*time.Second, "the agent is listed with its node", func() error {
			got, ok := reg.Get(uid)
			if !ok || got.Node == "" {
				return fmt.Errorf("not listed with a node yet (%+v)", got)
			}
			if got.Node != tc.want {
				return fmt.Errorf("listed on node %q, want %q (token %q, the agent says %q)", got.Node, tc.want, tc.tokenNode, tc.says)
			}
			return nil
		})
	}
}
