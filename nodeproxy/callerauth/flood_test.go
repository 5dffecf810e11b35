package callerauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// junk is the i-th token of a flood: even ones well-shaped (only a review
// can tell that their signature is junk), odd ones refused by their shape in
// one of several ways.
func junk(i int) string {
	if i%2 == 0 {
		return tk(fmt.Sprint("junk-", i))
	}
	switch i % 10 {
	case 1:
		return fmt.Sprintf("opaque-%d", i)
	case 3:
		return jwt(fmt.Sprintf(`{"aud":["https://kubernetes.default.svc"],"exp":%d,"jti":"%d"}`, t0.Add(time.Hour).Unix(), i))
	case 5:
		return tok(fmt.Sprint("expired-", i), t0.Add(-time.Second))
	case 7:
		return jwt(fmt.Sprintf(`{"aud":[%q],"exp":%d,"jti":"%d","kubernetes.io":{"namespace":"ns"}}`, aud, t0.Add(time.Hour).Unix(), i))
	default:
		return fmt.Sprintf("eyJhbGciOiJub25lIn0.eyJqdGkiOiI%d.", i)
	}
}

// TestFloodCostsBoundedReviews: 10,000 distinct junk tokens from 50
// sources over 10 s cost at most the global bound of reviews; the callers
// accepted before the flood, who keep scraping through it, pay no new review
// and are never refused, although the caches are far smaller than the flood.
func TestFloodCostsBoundedReviews(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{}}
	const callers = 20
	for i := range callers {
		r.answers[tk(fmt.Sprint("caller-", i))] = podStatus("ns", "sa", fmt.Sprint("p", i), fmt.Sprint("u", i), "")
	}
	const qps, burst = 5, 10
	a, err := New(r.review, Options{Audience: aud, CacheSize: callers, RefusalCacheSize: 16, Clock: clock,
		ReviewQPS: qps, ReviewBurst: burst, SourceQPS: 1, SourceBurst: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range callers {
		clock.Step(time.Second / qps) // the callers arrive within the limit
		if _, _, err := a.Authenticate(ctx, tk(fmt.Sprint("caller-", i)), fmt.Sprintf("10.1.0.%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := r.calls.Load()

	const flood = 10_000
	step := time.Millisecond // 10,000 tokens over 10 s
	var malformed, limited, refused int
	for i := range flood {
		clock.Step(step)
		_, _, err := a.Authenticate(ctx, junk(i), fmt.Sprintf("10.9.0.%d", i%50))
		var rl *RateLimitError
		switch {
		case errors.Is(err, ErrMalformed):
			malformed++
		case errors.As(err, &rl):
			limited++
			if !errors.Is(err, ErrRateLimited) || rl.RetryAfterSeconds() < 1 {
				t.Fatalf("rate-limit error %v (Retry-After %d)", err, rl.RetryAfterSeconds())
			}
		case errors.Is(err, ErrUnauthenticated):
			refused++ // reviewed, refused by the API server
		default:
			t.Fatalf("junk token %d: %v", i, err)
		}
		if i%100 == 0 {
			// The accepted callers scrape on through the flood.
			c := i / 100 % callers
			if _, cached, err := a.Authenticate(ctx, tk(fmt.Sprint("caller-", c)), fmt.Sprintf("10.1.0.%d", c)); err != nil || !cached {
				t.Fatalf("accepted caller %d during the flood: cached=%v err=%v", c, cached, err)
			}
		}
	}
	elapsed := time.Duration(flood) * step
	reviews := r.calls.Load() - before
	bound := int64(burst + qps*elapsed.Seconds())
	t.Logf("%d junk tokens over %v: %d malformed (no review), %d rate-limited (no review), %d reviewed and refused; %d reviews, bound %d",
		flood, elapsed, malformed, limited, refused, reviews, bound)
	if reviews > bound || int(reviews) != refused {
		t.Fatalf("%d reviews (%d refusals) for the flood, bound %d", reviews, refused, bound)
	}
	if malformed != flood/2 {
		t.Errorf("%d refused by shape, want the %d malformed ones", malformed, flood/2)
	}
	for i := range callers {
		if n := r.reviewsOf(tk(fmt.Sprint("caller-", i))); n != 1 {
			t.Errorf("accepted caller %d paid %d reviews, want 1 (before the flood)", i, n)
		}
	}
	st := a.Stats()
	if st.CachedAccepted != callers || st.CachedRefused > 16 || st.Malformed != int64(malformed) ||
		st.LimitedGlobal+st.LimitedSource != int64(limited) || st.ReviewsRefused != reviews || st.ReviewsAccepted != callers {
		t.Errorf("stats %+v", st)
	}
}

// TestRefusalsNeverEvictAccepted: with no rate limit at all, refused
// reviews, however many, stay in their own cache.
func TestRefusalsNeverEvictAccepted(t *testing.T) {
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{tk("a"): podStatus("ns", "sa", "p", "u", "")}}
	a := newAuth(t, r, clocktesting.NewFakeClock(t0))
	if _, _, err := a.Authenticate(context.Background(), tk("a"), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, _, err := a.Authenticate(context.Background(), tk(fmt.Sprint("bad-", i)), ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatal(err)
		}
	}
	if _, cached, err := a.Authenticate(context.Background(), tk("a"), ""); err != nil || !cached {
		t.Fatalf("accepted caller after 1000 refusals: cached=%v err=%v", cached, err)
	}
	if st := a.Stats(); st.CachedAccepted != 1 || st.CachedRefused != 1000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReviewLimits(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{}}
	a, err := New(r.review, Options{Audience: aud, Clock: clock, ReviewQPS: 10, ReviewBurst: 20, SourceQPS: 0.5, SourceBurst: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	try := func(id, source string) error {
		_, _, err := a.Authenticate(ctx, tk(id), source)
		return err
	}

	// One source: its burst, then refused with when to come back.
	for i := range 3 {
		if err := try(fmt.Sprint("s", i), "10.0.0.1"); errors.Is(err, ErrRateLimited) {
			t.Fatalf("review %d within the source's burst: %v", i, err)
		}
	}
	err = try("s3", "10.0.0.1")
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Global || rl.RetryAfterSeconds() != 2 || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Fatalf("4th unknown token of one source: %v, want the per-source limit with Retry-After 2s", err)
	}
	// A cached refusal is answered from the cache, not limited.
	if err := try("s0", "10.0.0.1"); errors.Is(err, ErrRateLimited) || !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("cached refusal: %v", err)
	}
	// A malformed token is refused by its shape, whatever the limits.
	if _, _, err := a.Authenticate(ctx, "junk", "10.0.0.1"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed token while limited: %v", err)
	}
	clock.Step(2 * time.Second)
	if err := try("s4", "10.0.0.1"); errors.Is(err, ErrRateLimited) {
		t.Fatalf("after Retry-After: %v", err)
	}

	// Many sources: the global bucket (full again after 2 s, less s4's).
	n := 0
	for i := range 100 {
		if err := try(fmt.Sprint("g", i), fmt.Sprintf("10.0.1.%d", i)); err != nil && !errors.Is(err, ErrRateLimited) {
			n++
		} else if errors.As(err, &rl) && !rl.Global {
			t.Fatalf("a fresh source was limited by its own bucket: %v", err)
		}
	}
	if n != 19 {
		t.Fatalf("%d reviews from 100 sources, want the 19 left in the global burst", n)
	}
	err = try("g-last", "10.0.2.1")
	if !errors.As(err, &rl) || !rl.Global || rl.RetryAfterSeconds() != 1 || !strings.Contains(err.Error(), "10/s") {
		t.Fatalf("over the global limit: %v", err)
	}
	// Refused by the global limit, a source keeps its own tokens.
	clock.Step(time.Second) // 10 more globally
	for i := range 3 {
		if err := try(fmt.Sprint("h", i), "10.0.2.1"); errors.Is(err, ErrRateLimited) {
			t.Fatalf("review %d of a source whose first try was refused globally: %v", i, err)
		}
	}
	if r.calls.Load() != int64(3+1+19+3) {
		t.Fatalf("%d reviews sent, want %d", r.calls.Load(), 3+1+19+3)
	}
}

// TestRateLimitIsNotCached: a token refused by the limit is reviewed once
// the limit allows it (it was never judged).
func TestRateLimitIsNotCached(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{tk("a"): podStatus("ns", "sa", "p", "u", "")}}
	a, _ := New(r.review, Options{Audience: aud, Clock: clock, ReviewQPS: 1, ReviewBurst: 1})
	if _, _, err := a.Authenticate(context.Background(), tk("x"), ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal(err)
	}
	if _, _, err := a.Authenticate(context.Background(), tk("a"), ""); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second review within a second: %v", err)
	}
	clock.Step(time.Second)
	if c, _, err := a.Authenticate(context.Background(), tk("a"), ""); err != nil || c.PodName != "p" {
		t.Fatalf("after a second: %+v %v", c, err)
	}
}
