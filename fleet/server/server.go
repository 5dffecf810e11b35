// Package server is the fleet server's OpAMP side (opamp-go's server over
// WebSocket): it authenticates each agent by its projected token, holds it
// to its pod's identity, records what it reports in the registry, and sends
// it the live settings package desired computes, on connect and whenever a
// source changes. See docs/fleet-protocol.md for the contract.
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	opampserver "github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/sources"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

// Audience is the only audience of the tokens agents present.
const Audience = "fargate-otel-fleet"

// Protocol names (docs/fleet-protocol.md).
const (
	FiguresCapability   = "io.fargate-otel.figures"
	FiguresMessageType  = "figures"
	EffectiveConfigName = "collector.yaml"
	// KindAttribute is the identifying attribute with the agent's kind
	// (api.KindSidecar or api.KindGateway), checked against its token.
	KindAttribute = "fargate-otel.kind"
)

// Authenticator verifies a bearer token (callerauth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, token, source string) (callerauth.Caller, bool, error)
	Forget(token string)
}

// LiveSource is the cluster's live settings (sources.Live).
type LiveSource interface {
	Get() (desired.Live, string)
}

// NamespaceSource reads exporters ConfigMaps (sources.Namespaces).
type NamespaceSource interface {
	Want(k sources.Key, dataKey string)
	Release(k sources.Key, dataKey string)
	Get(k sources.Key) desired.Namespace
}

// Options of New.
type Options struct {
	Auth       Authenticator
	Live       LiveSource
	Namespaces NamespaceSource
	Registry   *registry.Registry
	Metrics    *Metrics
	Log        logr.Logger
	// MaxAgents refuses connections beyond it (503, retry later), so that
	// one replica's memory stays bounded (default 20000).
	MaxAgents int
	// SendTimeout disconnects an agent that does not take a message in
	// that time (default 10s).
	SendTimeout time.Duration
	// PushWorkers send live settings to that many agents at once (default 64).
	PushWorkers int
	// AuthTimeout bounds one token review (default 10s).
	AuthTimeout time.Duration
	// GatewayNamespace and GatewayServiceAccount are the service account of
	// the gateway's replicas (the release namespace's
	// fargate-otel-gateway): an agent whose token is of that account is a
	// gateway, any other a sidecar. An empty GatewayServiceAccount: no
	// agent is a gateway. Gateways are listed, and never sent settings.
	GatewayNamespace, GatewayServiceAccount string
}

// Server is the OpAMP side of one replica.
type Server struct {
	o       Options
	log     logr.Logger
	reg     *registry.Registry
	metrics *Metrics

	mu    sync.Mutex
	cache map[string]desired.Desired // by namespace and source
	conns int
	// nextSlot is the latest time handed out to an agent told to retry
	// because of the review bound (see retryAfter).
	nextSlot time.Time
	dirty    chan struct{}
	pushq    chan *conn
}

// New returns a server; Attach gives its HTTP handler, Run its push loop.
func New(o Options) *Server {
	if o.MaxAgents <= 0 {
		o.MaxAgents = 20000
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.PushWorkers <= 0 {
		o.PushWorkers = 64
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 10 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Server{o: o, log: o.Log, reg: o.Registry, metrics: o.Metrics,
		cache: map[string]desired.Desired{}, dirty: make(chan struct{}, 1), pushq: make(chan *conn, 1024)}
}

// Attach returns the OpAMP handler (serve it on /v1/opamp of a TLS server)
// and the ConnContext that server needs.
func (s *Server) Attach() (http.HandlerFunc, func(context.Context, net.Conn) context.Context, error) {
	srv := opampserver.New(&logger{s.log})
	h, cc, err := srv.Attach(opampserver.Settings{
		Callbacks:          types.Callbacks{OnConnecting: s.onConnecting},
		CustomCapabilities: []string{FiguresCapability},
	})
	if err != nil {
		return nil, nil, err
	}
	return http.HandlerFunc(h), cc, nil
}

// SourcesChanged recomputes what every agent should run (debounced) and
// sends it where it changed. Safe to call from any goroutine.
func (s *Server) SourcesChanged() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// Run pushes changes until ctx ends.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range s.o.PushWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case c := <-s.pushq:
					c.push(ctx)
				}
			}
		})
	}
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-s.dirty:
			s.recomputeAll(ctx)
		case <-sweep.C:
			s.reg.Sweep()
		}
	}
}

// recomputeAll refreshes every connected agent's desired settings and
// queues a push for those whose settings differ from what they run.
func (s *Server) recomputeAll(ctx context.Context) {
	t0 := time.Now()
	queued := 0
	for _, uid := range s.reg.Connected() {
		c, _ := s.reg.Conn(uid).(*conn)
		if c == nil {
			continue
		}
		if c.refreshDesired() {
			select {
			case s.pushq <- c:
				queued++
			case <-ctx.Done():
				return
			}
		}
	}
	s.metrics.recompute.Observe(time.Since(t0).Seconds())
	if queued > 0 {
		s.log.V(1).Info("live settings changed", "agents", queued)
	}
}

// desiredFor is the cached desired settings of a pod of namespace ns with
// exporters source src.
func (s *Server) desiredFor(ns string, src desired.Source) desired.Desired {
	key := "cluster"
	if src.ConfigMap != "" {
		key = ns + "\x00" + src.String()
	}
	s.mu.Lock()
	d, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return d
	}
	live, _ := s.o.Live.Get()
	var nsState desired.Namespace
	if src.ConfigMap != "" {
		nsState = s.o.Namespaces.Get(sources.Key{Namespace: ns, Name: src.ConfigMap})
	}
	d = desired.Compute(live, src, nsState)
	s.mu.Lock()
	s.cache[key] = d
	s.mu.Unlock()
	return d
}

// onConnecting authenticates the WebSocket upgrade request.
func (s *Server) onConnecting(req *http.Request) types.ConnectionResponse {
	retry := "5"
	refuse := func(code int, reason string) types.ConnectionResponse {
		s.metrics.connections.WithLabelValues(reason).Inc()
		r := types.ConnectionResponse{HTTPStatusCode: code}
		if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests {
			r.HTTPResponseHeader = map[string]string{"Retry-After": retry}
		}
		return r
	}
	if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		// Plain-HTTP OpAMP would cost a token review per poll and is not
		// part of the protocol.
		return refuse(http.StatusBadRequest, "not_websocket")
	}
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return refuse(http.StatusUnauthorized, "no_token")
	}
	s.mu.Lock()
	full := s.conns >= s.o.MaxAgents
	s.mu.Unlock()
	if full {
		return refuse(http.StatusServiceUnavailable, "full")
	}
	ctx, cancel := context.WithTimeout(req.Context(), s.o.AuthTimeout)
	defer cancel()
	caller, _, err := s.o.Auth.Authenticate(ctx, token, remoteIP(req.RemoteAddr))
	if err != nil {
		if errors.Is(err, callerauth.ErrUnauthenticated) {
			s.log.V(1).Info("agent refused", "reason", err.Error(), "remote", req.RemoteAddr)
			return refuse(http.StatusUnauthorized, "unauthenticated")
		}
		if errors.Is(err, callerauth.ErrRateLimited) {
			// Every agent of a restarted replica reconnects at once: those
			// over the review bound come back after Retry-After, each with
			// its own jitter. Normal at a restart, so not logged as a fault.
			s.log.V(1).Info("agent told to retry", "reason", err.Error(), "remote", req.RemoteAddr)
			retry = strconv.Itoa(s.retryAfter(err, time.Now()))
			return refuse(http.StatusTooManyRequests, "review_rate_limited")
		}
		s.log.Info("cannot verify an agent's token now", "error", err.Error())
		return refuse(http.StatusServiceUnavailable, "review_failed")
	}
	uid, err := uuid.Parse(caller.PodUID)
	if err != nil {
		return refuse(http.StatusUnauthorized, "bad_pod_uid")
	}
	c := &conn{s: s, caller: caller, token: token, uid: caller.PodUID, uidBytes: uid[:], kind: s.kindOf(caller)}
	s.metrics.connections.WithLabelValues("accepted").Inc()
	return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
		OnConnected:       c.onConnected,
		OnMessage:         c.onMessage,
		OnConnectionClose: c.onClose,
	}}
}

// maxRetrySlot bounds the Retry-After handed out for the review bound.
const maxRetrySlot = 5 * time.Minute

// retryAfter is the Retry-After, in seconds, for an agent refused by the
// review bound. Refused by the bound of all agents together, each one gets
// its own slot after the last one handed out, at the bound's rate: the
// agents of a restarted replica come back spread at the rate the replica
// can review them, rather than all at once after the same delay, and
// most get in at their second attempt. Refused by its address's own
// bound, it is told when that bound allows one more.
func (s *Server) retryAfter(err error, now time.Time) int {
	var rl *callerauth.RateLimitError
	if !errors.As(err, &rl) || rl.QPS <= 0 {
		return 5
	}
	if !rl.Global {
		return rl.RetryAfterSeconds()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextSlot.Before(now) {
		s.nextSlot = now
	}
	s.nextSlot = s.nextSlot.Add(time.Duration(float64(time.Second) / rl.QPS))
	wait := min(s.nextSlot.Sub(now), maxRetrySlot)
	return max(1, int(math.Ceil(wait.Seconds())))
}

// kindOf is the kind of the agent with caller's token: by its service
// account, which the API server vouches for, not by what the agent says.
func (s *Server) kindOf(caller callerauth.Caller) string {
	if s.o.GatewayServiceAccount != "" && caller.Namespace == s.o.GatewayNamespace && caller.ServiceAccount == s.o.GatewayServiceAccount {
		return api.KindGateway
	}
	return api.KindSidecar
}

// logger passes opamp-go's logs on: its errors are mostly agents going
// away, so at debug level.
type logger struct{ log logr.Logger }

func (l *logger) Debugf(_ context.Context, format string, v ...any) {
	l.log.V(2).Info("opamp: " + fmt.Sprintf(format, v...))
}

func (l *logger) Errorf(_ context.Context, format string, v ...any) {
	l.log.V(1).Info("opamp: " + fmt.Sprintf(format, v...))
}

// remoteIP is the caller's address without its port: the source whose
// reviews of unknown tokens callerauth limits.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
