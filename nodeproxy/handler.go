// Package nodeproxy is the restricted kubelet stats proxy: the only holder of
// nodes/proxy in a fargate-otel install. A collector sidecar calls it with a
// projected service account token whose audience is the proxy's own; the
// proxy checks who is calling (TokenReview, then the pod bound into the
// token), that the request is the stats summary or pod list of the node that
// very pod runs on, or the log of one of that pod's own containers, and
// forwards it to the API server's nodes/proxy with its own credentials.
// Everything else is refused.
package nodeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/nodeproxy/pathfilter"
)

// DefaultAudience is the token audience the proxy accepts; the injector
// projects tokens with it into the collector container.
const DefaultAudience = "fargate-otel-nodeproxy"

// Authenticator verifies a bearer token presented from source, the
// caller's IP (callerauth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, token, source string) (callerauth.Caller, bool, error)
	Forget(token string)
}

// PodLookup finds pods (podindex.Index).
type PodLookup interface {
	// Get returns the pod, or nil when it does not exist.
	Get(ctx context.Context, namespace, name string) (*callerauth.Pod, error)
	// OthersOnNode reports whether pods other than uid run on node.
	OthersOnNode(node, uid string) bool
}

// Config is what a Handler needs. Upstream, Transport, Auth and Pods are
// required.
type Config struct {
	// Upstream is the API server's base URL (scheme and host only).
	Upstream *url.URL
	// Transport carries the proxy's own credentials to the API server.
	Transport http.RoundTripper
	Auth      Authenticator
	Pods      PodLookup
	// Rate and Burst limit each calling pod (default 1/s, burst 10: the
	// kubelet_stats receiver scrapes every 10 s or slower, twice at most).
	Rate  rate.Limit
	Burst int
	// MaxCallers bounds the per-pod rate limiters held (default 20000).
	MaxCallers int
	// UpstreamTimeout bounds one forwarded request (default 30s), except
	// a containerLogs follow stream, which has no time limit.
	UpstreamTimeout time.Duration
	// MaxFilteredBody bounds a body the proxy must read to filter it
	// (default 64 MiB).
	MaxFilteredBody int64
	// MaxFollowStreams bounds the containerLogs follow streams open at
	// once, all callers together (default 1000).
	MaxFollowStreams int
	// ExtraFollowStreamsPerPod: a pod may hold one follow stream per
	// container plus this many (default 2: room for a reconnect that
	// overlaps the stream it replaces).
	ExtraFollowStreamsPerPod int
	// StreamWriteTimeout bounds each write to a follow stream's caller: a
	// caller that stops reading is dropped after it (default 1m).
	StreamWriteTimeout time.Duration
	Logger             *slog.Logger
	Metrics            *Metrics
}

// Handler serves the allowed kubelet paths.
type Handler struct {
	cfg      Config
	limiters *cache.LRUExpireCache
	streams  *streamSlots
	base     string
}

// NewHandler checks cfg and returns the proxy's HTTP handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Upstream == nil || cfg.Upstream.Scheme == "" || cfg.Upstream.Host == "" {
		return nil, errors.New("nodeproxy: the API server URL is required")
	}
	if p := cfg.Upstream.Path; p != "" && p != "/" || cfg.Upstream.RawQuery != "" {
		return nil, fmt.Errorf("nodeproxy: API server URL %q must have no path or query", cfg.Upstream.Redacted())
	}
	if cfg.Transport == nil || cfg.Auth == nil || cfg.Pods == nil {
		return nil, errors.New("nodeproxy: transport, authenticator and pod look-up are required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.MaxCallers <= 0 {
		cfg.MaxCallers = 20000
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 30 * time.Second
	}
	if cfg.MaxFilteredBody <= 0 {
		cfg.MaxFilteredBody = 64 << 20
	}
	if cfg.MaxFollowStreams <= 0 {
		cfg.MaxFollowStreams = 1000
	}
	if cfg.ExtraFollowStreamsPerPod < 0 {
		cfg.ExtraFollowStreamsPerPod = 0
	} else if cfg.ExtraFollowStreamsPerPod == 0 {
		cfg.ExtraFollowStreamsPerPod = 2
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	return &Handler{
		cfg:      cfg,
		limiters: cache.NewLRUExpireCache(cfg.MaxCallers),
		streams:  newStreamSlots(cfg.MaxFollowStreams),
		base:     cfg.Upstream.Scheme + "://" + cfg.Upstream.Host,
	}, nil
}

// ServeHTTP checks, in order of cost: the path, the token, the caller's
// rate, the caller's pod and node (and for logs, that the container is one
// of the caller's own); then forwards.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, err := pathfilter.Allow(r.Method, r.RequestURI)
	if err != nil {
		code := http.StatusNotFound
		if r.Method != http.MethodGet {
			code = http.StatusMethodNotAllowed
			w.Header().Set("Allow", http.MethodGet)
		}
		h.refuse(w, r, "", code, "path", err.Error(), nil)
		return
	}
	resource := target.Resource.String()

	token, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fargate-otel-nodeproxy"`)
		h.refuse(w, r, resource, http.StatusUnauthorized, "unauthenticated",
			"no bearer token: mount a projected service account token with audience "+DefaultAudience+" (the fargate-otel injector does this)", nil)
		return
	}
	caller, cached, err := h.cfg.Auth.Authenticate(r.Context(), token, remoteIP(r))
	var limited *callerauth.RateLimitError
	switch {
	case cached:
		h.cfg.Metrics.TokenCache.WithLabelValues("hit").Inc()
	case errors.Is(err, callerauth.ErrMalformed) || errors.As(err, &limited):
		// Refused before any review: neither a hit nor a review.
	default:
		h.cfg.Metrics.TokenCache.WithLabelValues("miss").Inc()
	}
	if err != nil {
		if errors.Is(err, callerauth.ErrUnauthenticated) {
			reason := "unauthenticated"
			if errors.Is(err, callerauth.ErrMalformed) {
				reason = "malformed_token"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="fargate-otel-nodeproxy", error="invalid_token"`)
			h.refuse(w, r, resource, http.StatusUnauthorized, reason, err.Error(), nil)
			return
		}
		if limited != nil {
			// Not reviewed: the token may be good, the caller retries.
			reason := "review_rate_limited_source"
			if limited.Global {
				reason = "review_rate_limited_global"
			}
			w.Header().Set("Retry-After", strconv.Itoa(limited.RetryAfterSeconds()))
			h.refuse(w, r, resource, http.StatusTooManyRequests, reason, limited.Error(), nil)
			return
		}
		if errors.Is(err, callerauth.ErrReviewRefused) {
			h.refuse(w, r, resource, http.StatusBadGateway, "upstream_refused",
				"the API server refused the proxy's own credentials (it may not create TokenReviews)",
				fmt.Errorf("%w: grant the proxy's service account ClusterRole fargate-otel-nodeproxy", err))
			return
		}
		w.Header().Set("Retry-After", "5")
		h.refuse(w, r, resource, http.StatusServiceUnavailable, "review_failed", "cannot verify the token now, retry later", err)
		return
	}

	if !h.limiter(caller.PodUID).Allow() {
		w.Header().Set("Retry-After", "1")
		h.refuse(w, r, resource, http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("pod %s/%s exceeds %g requests/s (burst %d)", caller.Namespace, caller.PodName, float64(h.cfg.Rate), h.cfg.Burst), nil)
		return
	}

	pod, err := h.cfg.Pods.Get(r.Context(), caller.Namespace, caller.PodName)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		h.refuse(w, r, resource, http.StatusServiceUnavailable, "pod_lookup_failed", "cannot look up the calling pod now, retry later", err)
		return
	}
	if err := callerauth.CheckPod(caller, pod, target.Node); err != nil {
		if errors.Is(err, callerauth.ErrPodGone) {
			// The review may still be cached; the next request must ask the
			// API server again (which refuses tokens of deleted pods).
			h.cfg.Auth.Forget(token)
		}
		h.refuse(w, r, resource, http.StatusForbidden, "forbidden", err.Error(), nil)
		return
	}

	if target.Resource == pathfilter.ContainerLogs {
		if err := checkLogTarget(caller, pod, target); err != nil {
			h.refuse(w, r, resource, http.StatusForbidden, "forbidden", err.Error(), nil)
			return
		}
		h.forwardLogs(w, r, target, caller, pod)
		return
	}
	h.forward(w, r, target, caller)
}

// remoteIP is the caller's address without its port: the source that the
// limit on reviews of unknown tokens counts.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handler) limiter(uid string) *rate.Limiter {
	if v, ok := h.limiters.Get(uid); ok {
		return v.(*rate.Limiter)
	}
	l := rate.NewLimiter(h.cfg.Rate, h.cfg.Burst)
	// An idle limiter refills to its burst within Burst/Rate seconds; after
	// that forgetting it changes nothing.
	h.limiters.Add(uid, l, time.Duration(float64(h.cfg.Burst)/float64(h.cfg.Rate)*float64(time.Second))+time.Minute)
	return l
}

// forward requests target from the API server with the proxy's credentials.
// Nothing from the caller's request is passed on: not its headers (its token
// least of all), not its body, only the validated target.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, target pathfilter.Target, caller callerauth.Caller) {
	resource := target.Resource.String()
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.UpstreamTimeout)
	defer cancel()
	resp, ok := h.roundTrip(ctx, w, r, target, caller)
	if !ok {
		return
	}
	defer func() { _ = resp.Body.Close() }()

	filter := target.Resource == pathfilter.Pods || h.cfg.Pods.OthersOnNode(target.Node, caller.PodUID)
	w.Header().Set("Cache-Control", "no-store")
	if !filter {
		copyHeader(w, resp, "Content-Type")
		if resp.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		w.WriteHeader(http.StatusOK)
		n, err := io.Copy(w, resp.Body)
		h.done(r, resource, http.StatusOK, caller, "forwarded", slog.Int64("bytes", n), errAttr(err))
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.cfg.MaxFilteredBody+1))
	if err == nil && int64(len(body)) > h.cfg.MaxFilteredBody {
		err = fmt.Errorf("answer larger than %d bytes", h.cfg.MaxFilteredBody)
	}
	if err == nil {
		if target.Resource == pathfilter.Pods {
			body, err = filterPodList(body, caller.PodUID)
		} else {
			body, err = filterSummary(body, caller.PodUID)
		}
	}
	if err != nil {
		h.refuse(w, r, resource, http.StatusBadGateway, "upstream_error", "cannot filter the kubelet's answer to the calling pod", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	h.done(r, resource, http.StatusOK, caller, "forwarded filtered", slog.Int("bytes", len(body)), errAttr(err))
}

// roundTrip sends target's request upstream within ctx and returns a 200
// answer for the caller to forward; any other outcome it answers itself
// (ok false). The caller closes the body.
func (h *Handler) roundTrip(ctx context.Context, w http.ResponseWriter, r *http.Request, target pathfilter.Target, caller callerauth.Caller) (*http.Response, bool) {
	resource := target.Resource.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+target.UpstreamPath(), http.NoBody)
	if err != nil {
		h.refuse(w, r, resource, http.StatusInternalServerError, "internal", "cannot build the upstream request", err)
		return nil, false
	}
	if target.Resource == pathfilter.ContainerLogs {
		// The kubelet's bytes as they come: no transparent gzip, whose
		// reader would hold back what it has not a whole block of.
		req.Header.Set("Accept-Encoding", "identity")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	start := time.Now()
	resp, err := h.cfg.Transport.RoundTrip(req)
	h.cfg.Metrics.UpstreamDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		h.cfg.Metrics.UpstreamRequests.WithLabelValues("error").Inc()
		h.refuse(w, r, resource, http.StatusBadGateway, "upstream_error", "the API server could not be reached", err)
		return nil, false
	}
	h.cfg.Metrics.UpstreamRequests.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()

	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// The proxy's own credentials are wrong: that is the operator's
		// problem, not the caller's, and the caller must not think its
		// token was refused.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		_ = resp.Body.Close()
		h.refuse(w, r, resource, http.StatusBadGateway, "upstream_refused",
			"the API server refused the proxy's own credentials", fmt.Errorf("HTTP %d from %s: %s: grant the proxy's service account get on nodes/proxy (ClusterRole fargate-otel-nodeproxy)", resp.StatusCode, target.UpstreamPath(), strings.TrimSpace(string(body))))
		return nil, false
	case resp.StatusCode != http.StatusOK:
		// Not found node, kubelet unreachable, container not running...:
		// pass the answer on, briefly.
		copyHeader(w, resp, "Content-Type")
		w.WriteHeader(resp.StatusCode)
		n, _ := io.Copy(w, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		h.done(r, resource, resp.StatusCode, caller, "upstream answered", slog.Int64("bytes", n))
		return nil, false
	}
	return resp, true
}

func copyHeader(w http.ResponseWriter, resp *http.Response, name string) {
	if v := resp.Header.Get(name); v != "" {
		w.Header().Set(name, v)
	}
}

func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("error", err.Error())
}

// refuse answers an error. msg goes to the caller; cause, which may hold
// internal detail, only to the log.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, resource string, code int, reason, msg string, cause error) {
	h.cfg.Metrics.Refused.WithLabelValues(reason).Inc()
	h.cfg.Metrics.Requests.WithLabelValues(resourceLabel(resource), strconv.Itoa(code)).Inc()
	level := slog.LevelInfo
	switch {
	case code >= 500:
		level = slog.LevelWarn
	case floodReasons[reason]:
		// What a flood of junk tokens causes, one line each: counted in
		// the metrics, logged only at debug, so that a flood cannot turn
		// into a flood of logs.
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{slog.Int("code", code), slog.String("reason", reason), slog.String("remote", r.RemoteAddr), slog.String("detail", msg)}
	if cause != nil {
		attrs = append(attrs, slog.String("error", cause.Error()))
	}
	h.cfg.Logger.LogAttrs(r.Context(), level, "refused", attrs...)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, "fargate-otel-nodeproxy: "+msg+"\n")
}

// floodReasons are refusals that cost no API call and come in floods.
var floodReasons = map[string]bool{"malformed_token": true, "review_rate_limited_source": true, "review_rate_limited_global": true}

func (h *Handler) done(r *http.Request, resource string, code int, c callerauth.Caller, msg string, attrs ...slog.Attr) {
	h.cfg.Metrics.Requests.WithLabelValues(resourceLabel(resource), strconv.Itoa(code)).Inc()
	if !h.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	attrs = append(attrs, slog.Int("code", code), slog.String("resource", resource), slog.String("pod", c.Namespace+"/"+c.PodName))
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, msg, attrs...)
}

func resourceLabel(r string) string {
	if r == "" {
		return "none"
	}
	return r
}

// bearerToken reads "Authorization: Bearer <token>" (the scheme is
// case-insensitive: the kubelet_stats receiver sends "bearer").
func bearerToken(r *http.Request) (string, bool) {
	v := r.Header.Values("Authorization")
	if len(v) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
