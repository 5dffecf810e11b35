// Package callerauth tells the node proxy which pod is calling: it verifies
// the caller's projected service account token with a TokenReview (for the
// proxy's own audience only) and reads the pod name and uid that the API
// server bound into it. Reviews are cached, keyed by a hash of the token, so
// that a steady scrape costs no API call; tokens that cannot pass are refused
// by their shape, and the reviews of unknown tokens are rate-limited, so that
// a flood of junk tokens costs a bounded number of API calls and never evicts
// an accepted caller. Nothing in it is specific to the node proxy: a server
// with another audience uses it the same way.
package callerauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
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
	// CacheSize bounds the number of cached accepted reviews (default
	// 20000). Refusals never take a place here.
	CacheSize int
	// TTL is how long an accepted review is trusted (default 2m, the
	// kubelet's own webhook token cache TTL), never past the token's expiry.
	TTL time.Duration
	// RefusalCacheSize bounds the number of cached refusals, kept apart
	// from the accepted reviews so that a flood of bad tokens can never
	// evict an accepted caller (default 4096).
	RefusalCacheSize int
	// NegativeTTL is how long a refused token is remembered, so that a
	// caller with a bad token does not turn every request into an API call
	// (default 10s).
	NegativeTTL time.Duration
	// ReviewQPS and ReviewBurst bound the TokenReviews sent, all callers
	// together (a token bucket; default 50/s, burst 100). Over it, a token
	// not in a cache is refused with ErrRateLimited, not reviewed.
	ReviewQPS   float64
	ReviewBurst int
	// SourceQPS and SourceBurst bound the reviews of unknown tokens that one
	// source (the caller's remote IP) may cause (default 1/s, burst 10):
	// one pod needs a review when it starts and when its token rotates or
	// its cached review expires, far below that.
	SourceQPS   float64
	SourceBurst int
	// MaxSources bounds the per-source buckets held (default 10000); an
	// evicted source starts again with a full bucket, the global bound
	// holds regardless.
	MaxSources int
	// Clock is for tests.
	Clock cache.Clock
}

// Authenticator verifies tokens. It is safe for concurrent use.
type Authenticator struct {
	review   Reviewer
	opts     Options
	accepted *cache.LRUExpireCache
	refused  *cache.LRUExpireCache
	inflight singleflight.Group
	clock    cache.Clock
	limits   *limits
	stats    counters
}

type cacheEntry struct {
	caller Caller
	err    error // non-nil for a refused token
}

// WithDefaults returns o with every zero value replaced by its default.
func (o Options) WithDefaults() Options {
	if o.CacheSize <= 0 {
		o.CacheSize = 20000
	}
	if o.TTL <= 0 {
		o.TTL = 2 * time.Minute
	}
	if o.RefusalCacheSize <= 0 {
		o.RefusalCacheSize = 4096
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 10 * time.Second
	}
	if o.ReviewQPS <= 0 {
		o.ReviewQPS = 50
	}
	if o.ReviewBurst <= 0 {
		o.ReviewBurst = 100
	}
	if o.SourceQPS <= 0 {
		o.SourceQPS = 1
	}
	if o.SourceBurst <= 0 {
		o.SourceBurst = 10
	}
	if o.MaxSources <= 0 {
		o.MaxSources = 10000
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}

// New returns an Authenticator that sends reviews through review.
func New(review Reviewer, opts Options) (*Authenticator, error) {
	if opts.Audience == "" {
		return nil, errors.New("callerauth: an audience is required")
	}
	if review == nil {
		return nil, errors.New("callerauth: a reviewer is required")
	}
	opts = opts.WithDefaults()
	return &Authenticator{
		review:   review,
		opts:     opts,
		accepted: cache.NewLRUExpireCacheWithClock(opts.CacheSize, opts.Clock),
		refused:  cache.NewLRUExpireCacheWithClock(opts.RefusalCacheSize, opts.Clock),
		clock:    opts.Clock,
		limits:   newLimits(opts, opts.Clock),
	}, nil
}

// Options returns the options in effect, defaults filled in.
func (a *Authenticator) Options() Options { return a.opts }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Authenticate returns the pod behind token, presented by source (the
// caller's remote IP: it keys the per-source limit on reviews; "" is one
// shared source). The bool is true when the answer came from a cache.
//
// In order of cost: an accepted review in the cache answers at once; a token
// not shaped like a projected token of the audience is refused without a
// review (ErrMalformed); a cached refusal answers at once; over the review
// limits the token is refused without a review (a *RateLimitError, which
// wraps ErrRateLimited); only then is a TokenReview sent, one per token
// however many requests carry it.
//
// Errors wrapping ErrUnauthenticated mean the token is refused; rate-limit
// errors and other errors are transient (the API server could not be asked)
// and are not cached.
func (a *Authenticator) Authenticate(ctx context.Context, token, source string) (Caller, bool, error) {
	if token == "" {
		return Caller{}, false, fmt.Errorf("%w: no bearer token: mount a projected service account token with audience %q", ErrUnauthenticated, a.opts.Audience)
	}
	if len(token) > MaxTokenBytes {
		// Refused before it is even hashed.
		a.stats.malformed.Add(1)
		_, err := CheckShape(token, a.opts.Audience, a.clock.Now())
		return Caller{}, false, err
	}
	key := sha256.Sum256([]byte(token))
	if v, ok := a.accepted.Get(key); ok {
		return v.(cacheEntry).caller, true, nil
	}
	claims, err := CheckShape(token, a.opts.Audience, a.clock.Now())
	if err != nil {
		a.stats.malformed.Add(1)
		return Caller{}, false, err
	}
	if v, ok := a.refused.Get(key); ok {
		return Caller{}, true, v.(cacheEntry).err
	}
	// Concurrent first requests with one token share one review (and one
	// place in the limits).
	v, err, _ := a.inflight.Do(string(key[:]), func() (any, error) {
		if v, ok := a.accepted.Get(key); ok {
			return v, nil
		}
		if v, ok := a.refused.Get(key); ok {
			return v, nil
		}
		if err := a.limits.admit(source); err != nil {
			a.stats.countLimited(err)
			return nil, err
		}
		status, err := a.review(ctx, token, []string{a.opts.Audience})
		if err != nil {
			a.stats.reviewsFailed.Add(1)
			return nil, err
		}
		caller, verr := callerFromStatus(status, a.opts.Audience)
		e := cacheEntry{caller: caller, err: verr}
		if verr != nil {
			a.stats.reviewsRefused.Add(1)
			a.refused.Add(key, e, a.opts.NegativeTTL)
			return e, nil
		}
		a.stats.reviewsAccepted.Add(1)
		if ttl := min(a.opts.TTL, claims.Expiry.Sub(a.clock.Now())); ttl > 0 {
			a.accepted.Add(key, e, ttl)
		}
		return e, nil
	})
	if err != nil {
		var rl *RateLimitError
		if errors.As(err, &rl) {
			return Caller{}, false, err
		}
		return Caller{}, false, fmt.Errorf("verify token: %w", err)
	}
	e := v.(cacheEntry)
	return e.caller, false, e.err
}

// Forget drops a cached review, for a token whose pod turned out to be gone.
func (a *Authenticator) Forget(token string) {
	a.accepted.Remove(sha256.Sum256([]byte(token)))
}

// Len is the number of cached accepted reviews.
func (a *Authenticator) Len() int { return len(a.accepted.Keys()) }

// Stats are counts since the Authenticator was made, for metrics.
type Stats struct {
	// ReviewsAccepted, ReviewsRefused and ReviewsFailed are the
	// TokenReviews sent, by outcome (failed: no answer, not cached).
	ReviewsAccepted, ReviewsRefused, ReviewsFailed int64
	// Malformed tokens were refused by their shape, without a review.
	Malformed int64
	// LimitedSource and LimitedGlobal tokens were refused unreviewed by
	// the per-source and the global review limit.
	LimitedSource, LimitedGlobal int64
	// CachedAccepted and CachedRefused are the entries held now.
	CachedAccepted, CachedRefused int
}

// Stats returns the counts so far.
func (a *Authenticator) Stats() Stats {
	return Stats{
		ReviewsAccepted: a.stats.reviewsAccepted.Load(),
		ReviewsRefused:  a.stats.reviewsRefused.Load(),
		ReviewsFailed:   a.stats.reviewsFailed.Load(),
		Malformed:       a.stats.malformed.Load(),
		LimitedSource:   a.stats.limitedSource.Load(),
		LimitedGlobal:   a.stats.limitedGlobal.Load(),
		CachedAccepted:  len(a.accepted.Keys()),
		CachedRefused:   len(a.refused.Keys()),
	}
}

type counters struct {
	reviewsAccepted, reviewsRefused, reviewsFailed atomic.Int64
	malformed, limitedSource, limitedGlobal        atomic.Int64
}

func (c *counters) countLimited(err error) {
	var rl *RateLimitError
	if errors.As(err, &rl) && rl.Global {
		c.limitedGlobal.Add(1)
	} else {
		c.limitedSource.Add(1)
	}
}

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
