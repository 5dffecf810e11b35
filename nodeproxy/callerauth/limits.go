package callerauth

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"
)

// ErrRateLimited is wrapped by *RateLimitError: a token that is in no cache
// arrived while its source, or all callers together, were over the limit of
// TokenReviews. It was not reviewed; the caller may retry after RetryAfter.
var ErrRateLimited = errors.New("token reviews rate-limited")

// RateLimitError says which limit refused a review and when to retry.
type RateLimitError struct {
	// Global is true for the limit of all callers together, false for the
	// per-source one.
	Global bool
	// Source is the source that was limited ("" for the global limit).
	Source string
	// QPS and Burst are the limit that refused.
	QPS   float64
	Burst int
	// RetryAfter is when the limit will allow one more review.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	if e.Global {
		return fmt.Sprintf("%v: the proxy is reviewing unknown tokens at its limit of %g/s (burst %d); retry after %v",
			ErrRateLimited, e.QPS, e.Burst, e.RetryAfter)
	}
	return fmt.Sprintf("%v: too many unknown tokens from %s: at most %g reviews/s per source (burst %d); retry after %v",
		ErrRateLimited, e.Source, e.QPS, e.Burst, e.RetryAfter)
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1,
// for an HTTP Retry-After header.
func (e *RateLimitError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// limits are the two token buckets a review must pass: the source's own,
// then the global one. A review refused by the global bucket gives its
// source's token back, so a source is charged only for reviews sent.
type limits struct {
	opts    Options
	clock   cache.Clock
	global  *rate.Limiter
	mu      sync.Mutex
	sources *cache.LRUExpireCache
	idle    time.Duration
}

func newLimits(o Options, clock cache.Clock) *limits {
	return &limits{
		opts:    o,
		clock:   clock,
		global:  rate.NewLimiter(rate.Limit(o.ReviewQPS), o.ReviewBurst),
		sources: cache.NewLRUExpireCacheWithClock(o.MaxSources, clock),
		// An idle bucket is full again after Burst/QPS; forgetting it
		// after that changes nothing.
		idle: time.Duration(float64(o.SourceBurst)/o.SourceQPS*float64(time.Second)) + time.Minute,
	}
}

func (l *limits) source(s string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.sources.Get(s); ok {
		return v.(*rate.Limiter)
	}
	lim := rate.NewLimiter(rate.Limit(l.opts.SourceQPS), l.opts.SourceBurst)
	l.sources.Add(s, lim, l.idle)
	return lim
}

// admit takes one review from the source's bucket and the global one, or
// returns a *RateLimitError and takes nothing.
func (l *limits) admit(source string) error {
	now := l.clock.Now()
	src := l.source(source).ReserveN(now, 1)
	if d := src.DelayFrom(now); d > 0 {
		src.CancelAt(now)
		return &RateLimitError{Source: source, QPS: l.opts.SourceQPS, Burst: l.opts.SourceBurst, RetryAfter: d}
	}
	g := l.global.ReserveN(now, 1)
	if d := g.DelayFrom(now); d > 0 {
		g.CancelAt(now)
		src.CancelAt(now)
		return &RateLimitError{Global: true, QPS: l.opts.ReviewQPS, Burst: l.opts.ReviewBurst, RetryAfter: d}
	}
	return nil
}
