// Package callerauth tells the node proxy which pod is calling: it verifies
// the caller's projected service account token with a TokenReview (for the
// proxy's own audience only) and reads the pod name and uid that the API
// server bound into it. Reviews are cached, keyed by a hash of the token, so
// that a steady scrape costs no API call.
package callerauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	authnv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

// Extra keys the API server sets on tokens bound to a pod.
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName = "authentication.kubernetes.io/node-name"

	serviceAccountPrefix = "system:serviceaccount:"
)

// Caller is who a verified token belongs to.
type Caller struct {
	Namespace      string
	ServiceAccount string
	PodName        string
	PodUID         string
	// NodeName is set when the API server binds the node into the token
	// (Kubernetes >= 1.30); the pod look-up is authoritative either way.
	NodeName string
}

// ErrUnauthenticated is wrapped by errors that mean "this token will never be
// accepted": the caller must fix its token, retrying does not help.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrReviewRefused is wrapped when the API server refuses the proxy's own
// TokenReview (its RBAC or credentials are wrong): the operator must act,
// not the caller.
var ErrReviewRefused = errors.New("the API server refused the proxy's TokenReview")

// Reviewer sends one TokenReview for token with the given audiences.
type Reviewer func(ctx context.Context, token string, audiences []string) (authnv1.TokenReviewStatus, error)

// ClientReviewer sends TokenReviews with a client-go client.
func ClientReviewer(c authnv1client.TokenReviewInterface) Reviewer {
	return func(ctx context.Context, token string, audiences []string) (authnv1.TokenReviewStatus, error) {
		tr, err := c.Create(ctx, &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences},
		}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return authnv1.TokenReviewStatus{}, fmt.Errorf("%w: %w", ErrReviewRefused, err)
		}
		if err != nil {
			return authnv1.TokenReviewStatus{}, fmt.Errorf("create TokenReview: %w", err)
		}
		return tr.Status, nil
	}
}

// Options tune an Authenticator. Zero values take the defaults.
type Options struct {
	// Audience is the only audience accepted (required).
	Audience string
	// CacheSize bounds the number of cached reviews, accepted and refused
	// together (default 20000).
	CacheSize int
	// TTL is how long an accepted review is trusted (default 2m, the
	// kubelet's own webhook token cache TTL), never past the token's expiry.
	TTL time.Duration
	// NegativeTTL is how long a refused token is remembered, so that a
	// caller with a bad token does not turn every request into an API call
	// (default 10s).
	NegativeTTL time.Duration
	// Clock is for tests.
	Clock cache.Clock
}

// Authenticator verifies tokens. It is safe for concurrent use.
type Authenticator struct {
	review   Reviewer
	opts     Options
	cache    *cache.LRUExpireCache
	inflight singleflight.Group
	clock    cache.Clock
}

type cacheEntry struct {
	caller Caller
	err    error // non-nil for a refused token
}

// New returns an Authenticator that sends reviews through review.
func New(review Reviewer, opts Options) (*Authenticator, error) {
	if opts.Audience == "" {
		return nil, errors.New("callerauth: an audience is required")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 20000
	}
	if opts.TTL <= 0 {
		opts.TTL = 2 * time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 10 * time.Second
	}
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	return &Authenticator{
		review: review,
		opts:   opts,
		cache:  cache.NewLRUExpireCacheWithClock(opts.CacheSize, clock),
		clock:  clock,
	}, nil
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Authenticate returns the pod behind token. Errors wrapping
// ErrUnauthenticated mean the token is refused; other errors are transient
// (the API server could not be asked) and are not cached.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Caller, bool, error) {
	if token == "" {
		return Caller{}, false, fmt.Errorf("%w: no bearer token: mount a projected service account token with audience %q", ErrUnauthenticated, a.opts.Audience)
	}
	key := sha256.Sum256([]byte(token))
	if v, ok := a.cache.Get(key); ok {
		e := v.(cacheEntry)
		return e.caller, true, e.err
	}
	// Concurrent first requests with one token share one review.
	v, err, _ := a.inflight.Do(string(key[:]), func() (any, error) {
		if v, ok := a.cache.Get(key); ok {
			return v, nil
		}
		status, err := a.review(ctx, token, []string{a.opts.Audience})
		if err != nil {
			return nil, err
		}
		caller, verr := callerFromStatus(status, a.opts.Audience)
		e := cacheEntry{caller: caller, err: verr}
		ttl := a.opts.NegativeTTL
		if verr == nil {
			ttl = a.opts.TTL
			if exp, ok := tokenExpiry(token); ok {
				ttl = min(ttl, exp.Sub(a.clock.Now()))
			}
		}
		if ttl > 0 {
			a.cache.Add(key, e, ttl)
		}
		return e, nil
	})
	if err != nil {
		return Caller{}, false, fmt.Errorf("verify token: %w", err)
	}
	e := v.(cacheEntry)
	return e.caller, false, e.err
}

// Forget drops a cached review, for a token whose pod turned out to be gone.
func (a *Authenticator) Forget(token string) {
	a.cache.Remove(sha256.Sum256([]byte(token)))
}

// Len is the number of cached reviews.
func (a *Authenticator) Len() int { return len(a.cache.Keys()) }

// callerFromStatus is the pure part: what an answered TokenReview means.
func callerFromStatus(s authnv1.TokenReviewStatus, audience string) (Caller, error) {
	if !s.Authenticated {
		msg := "the API server did not accept the token"
		if s.Error != "" {
			// The API server's reason never contains the token.
			msg += ": " + s.Error
		}
		return Caller{}, fmt.Errorf("%w: %s (expected a projected service account token with audience %q, bound to a running pod)", ErrUnauthenticated, msg, audience)
	}
	if !slices.Contains(s.Audiences, audience) {
		return Caller{}, fmt.Errorf("%w: token audiences %v do not include %q: mount a projected serviceAccountToken with audience %q", ErrUnauthenticated, s.Audiences, audience, audience)
	}
	rest, ok := strings.CutPrefix(s.User.Username, serviceAccountPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" {
		return Caller{}, fmt.Errorf("%w: user %q is not a service account", ErrUnauthenticated, s.User.Username)
	}
	c := Caller{
		Namespace:      ns,
		ServiceAccount: sa,
		PodName:        single(s.User.Extra[ExtraPodName]),
		PodUID:         single(s.User.Extra[ExtraPodUID]),
		NodeName:       single(s.User.Extra[ExtraNodeName]),
	}
	if c.PodName == "" || c.PodUID == "" {
		return Caller{}, fmt.Errorf("%w: the token of %s/%s is not bound to a pod: use a projected serviceAccountToken volume, not a Secret-based token", ErrUnauthenticated, ns, sa)
	}
	return c, nil
}

func single(v authnv1.ExtraValue) string {
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

// tokenExpiry reads the exp claim of a JWT without verifying it. It is used
// only to shorten how long an already verified review is cached.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}
