// Package httpapi serves the fleet server's HTTP endpoints other than
// OpAMP: the read-only API and page on the pod's loopback (Local: people
// reach it with kubectl port-forward, which the API server authorizes with
// their own RBAC), the peers' read on the TLS port (Peer: only the fleet
// server's own service account), and probes and metrics on the pod IP.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/page"
	"github.com/fargate-otel/fargate-otel/fleet/peers"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

// PeerSource reads the other replicas (peers.Peers); nil means none.
type PeerSource interface {
	Fetch(ctx context.Context) ([]api.Replica, [][]api.Agent, error)
}

// Authenticator verifies peers' tokens.
type Authenticator interface {
	Authenticate(ctx context.Context, token, source string) (callerauth.Caller, bool, error)
}

// Options of the handlers.
type Options struct {
	Replica  string
	Version  string
	Registry *registry.Registry
	Peers    PeerSource
	// Auth, Namespace and ServiceAccount: who may read as a peer.
	Auth                      Authenticator
	Namespace, ServiceAccount string
	Log                       logr.Logger
}

// Fleet is the merged view of every replica, filtered.
func Fleet(ctx context.Context, o Options, f api.Filter) api.Fleet {
	own := o.Registry.List()
	out := api.Fleet{Version: o.Version, Time: time.Now().UTC(),
		Replicas: []api.Replica{{Name: o.Replica, Agents: len(own)}}}
	lists := [][]api.Agent{own}
	if o.Peers != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		reps, ls, err := o.Peers.Fetch(ctx)
		if err != nil {
			out.Replicas = append(out.Replicas, api.Replica{Name: "(other replicas)", Error: err.Error()})
		}
		out.Replicas = append(out.Replicas, reps...)
		lists = append(lists, ls...)
	}
	out.Agents = f.Apply(api.Merge(lists...))
	return out
}

// Local is the handler of the loopback port: the page and the API.
func Local(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		f, err := api.ParseFilter(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The page filters in the browser: it gets everything, with the
		// query's filter preset.
		view := Fleet(r.Context(), o, api.Filter{})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		securityHeaders(w)
		if err := page.Render(w, view, f); err != nil {
			o.Log.Error(err, "render the page")
		}
	})
	mux.HandleFunc("GET "+api.PathFleet, func(w http.ResponseWriter, r *http.Request) {
		f, err := api.ParseFilter(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, Fleet(r.Context(), o, f))
	})
	mux.HandleFunc("GET "+api.PathAgents, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, api.AgentList{Replica: o.Replica, Version: o.Version, Agents: o.Registry.List()})
	})
	mux.HandleFunc("GET "+api.PathAgentConfig+"{uid}/config", func(w http.ResponseWriter, r *http.Request) {
		body, ok := o.Registry.EffectiveConfig(r.PathValue("uid"))
		if !ok {
			http.Error(w, "no effective config of agent "+r.PathValue("uid")+" on replica "+o.Replica+" (it may be connected to another one: see "+api.PathFleet+")", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		_, _ = w.Write([]byte(body))
	})
	return loopbackOnly(mux)
}

// loopbackOnly refuses requests whose Host is not a loopback name: the
// port is reached through a port-forward on the user's machine, and a web
// page the user visits meanwhile must not read it by DNS rebinding.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.Trim(host, "[]")
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "the fleet page answers on localhost only (kubectl port-forward, or fargate-otel fleet --web)", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Peer is the handler of the peers' read, served on the TLS port.
func Peer(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			http.Error(w, "a fleet server replica's token is required", http.StatusUnauthorized)
			return
		}
		c, _, err := o.Auth.Authenticate(r.Context(), token, remoteIP(r.RemoteAddr))
		if err != nil {
			code := http.StatusServiceUnavailable
			if errors.Is(err, callerauth.ErrUnauthenticated) {
				code = http.StatusUnauthorized
			}
			var limited *callerauth.RateLimitError
			if errors.As(err, &limited) {
				// The peer waits this long and asks once more (peers.fetch).
				w.Header().Set("Retry-After", strconv.Itoa(limited.RetryAfterSeconds()))
			}
			http.Error(w, err.Error(), code)
			return
		}
		if err := peers.Authorize(c, o.Namespace, o.ServiceAccount); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		writeJSON(w, api.AgentList{Replica: o.Replica, Version: o.Version, Agents: o.Registry.List()})
	})
}

// Probes serves /healthz, /readyz (ready reports why not) and /metrics.
func Probes(gatherer prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	securityHeaders(w)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// The page's own inline script and style only; nothing else loads.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

// remoteIP is the caller's address without its port: the source whose
// reviews of unknown tokens callerauth limits.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
