package callerauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

const aud = "fargate-otel-nodeproxy"

// fakeReviewer answers like the API server would for a table of tokens and
// counts the reviews it was asked for.
type fakeReviewer struct {
	calls   atomic.Int64
	answers map[string]authnv1.TokenReviewStatus
	err     error
	block   chan struct{}

	mu       sync.Mutex
	perToken map[string]int
}

func (f *fakeReviewer) review(_ context.Context, token string, audiences []string) (authnv1.TokenReviewStatus, error) {
	f.calls.Add(1)
	f.mu.Lock()
	if f.perToken == nil {
		f.perToken = map[string]int{}
	}
	f.perToken[token]++
	f.mu.Unlock()
	if f.block != nil {
		<-f.block
	}
	if f.err != nil {
		return authnv1.TokenReviewStatus{}, f.err
	}
	if len(audiences) != 1 || audiences[0] != aud {
		return authnv1.TokenReviewStatus{}, fmt.Errorf("review asked for audiences %v", audiences)
	}
	s, ok := f.answers[token]
	if !ok {
		return authnv1.TokenReviewStatus{Error: "invalid bearer token"}, nil
	}
	return s, nil
}

// reviewsOf is how many reviews token cost.
func (f *fakeReviewer) reviewsOf(token string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perToken[token]
}

func podStatus(ns, sa, pod, uid, node string) authnv1.TokenReviewStatus {
	extra := map[string]authnv1.ExtraValue{ExtraPodName: {pod}, ExtraPodUID: {uid}}
	if node != "" {
		extra[ExtraNodeName] = authnv1.ExtraValue{node}
	}
	return authnv1.TokenReviewStatus{
		Authenticated: true,
		Audiences:     []string{aud},
		User:          authnv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + sa, Extra: extra},
	}
}

// t0 is the fake clock's start; test tokens expire an hour later.
var t0 = time.Unix(1_800_000_000, 0)

// jwt is a token shaped like a projected service account token (what
// CheckShape passes) with the given payload; its signature is junk, which
// only a TokenReview would find out.
func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." +
		enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("not-a-real-signature-"+payload))
}

// tok is a well-shaped token of pod ns/pod for the proxy's audience,
// distinct per id, expiring at exp.
func tok(id string, exp time.Time) string {
	return jwt(fmt.Sprintf(`{"aud":[%q],"exp":%d,"jti":%q,"kubernetes.io":{"namespace":"ns","pod":{"name":"p-%s","uid":"u-%s"}}}`, aud, exp.Unix(), id, id, id))
}

// tk is tok with an expiry far after every fake clock.
func tk(id string) string { return tok(id, t0.Add(24*time.Hour)) }

func newAuth(t *testing.T, r *fakeReviewer, clock *clocktesting.FakeClock) *Authenticator {
	t.Helper()
	a, err := New(r.review, Options{Audience: aud, TTL: 2 * time.Minute, NegativeTTL: 10 * time.Second, CacheSize: 100,
		ReviewQPS: 1e6, ReviewBurst: 1e6, SourceQPS: 1e6, SourceBurst: 1e6, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthenticateAcceptsBoundTokenAndCaches(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{
		tk("a"): podStatus("shop", "cart", "cart-0", "uid-a", "node-a"),
	}}
	a := newAuth(t, r, clock)
	ctx := context.Background()
	c, cached, err := a.Authenticate(ctx, tk("a"), "10.0.0.1")
	if err != nil || cached {
		t.Fatalf("first call: %v, cached=%v", err, cached)
	}
	want := Caller{Namespace: "shop", ServiceAccount: "cart", PodName: "cart-0", PodUID: "uid-a", NodeName: "node-a"}
	if c != want {
		t.Fatalf("caller = %+v, want %+v", c, want)
	}
	for range 10 {
		c2, cached, err := a.Authenticate(ctx, tk("a"), "10.0.0.1")
		if err != nil || !cached || c2 != want {
			t.Fatalf("cached call: %+v %v %v", c2, cached, err)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("%d reviews for 11 requests, want 1", n)
	}
	clock.Step(2*time.Minute + time.Second)
	if _, cached, err := a.Authenticate(ctx, tk("a"), "10.0.0.1"); err != nil || cached {
		t.Fatalf("after TTL: cached=%v err=%v", cached, err)
	}
	if n := r.calls.Load(); n != 2 {
		t.Fatalf("%d reviews after TTL expiry, want 2", n)
	}
	a.Forget(tk("a"))
	if _, cached, _ := a.Authenticate(ctx, tk("a"), "10.0.0.1"); cached {
		t.Fatal("Forget did not drop the cached review")
	}
}

func TestAuthenticateCacheNeverOutlivesToken(t *testing.T) {
	clock := clocktesting.NewFakeClock(t0)
	short := tok("short", t0.Add(30*time.Second))
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{short: podStatus("ns", "sa", "p", "u", "")}}
	a := newAuth(t, r, clock)
	if _, _, err := a.Authenticate(context.Background(), short, ""); err != nil {
		t.Fatal(err)
	}
	clock.Step(29 * time.Second)
	if _, cached, _ := a.Authenticate(context.Background(), short, ""); !cached {
		t.Fatal("review not cached before the token's exp claim")
	}
	clock.Step(2 * time.Second)
	_, cached, err := a.Authenticate(context.Background(), short, "")
	if cached || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after exp: cached=%v err=%v, want refused as expired without a review", cached, err)
	}
	if r.calls.Load() != 1 {
		t.Fatalf("%d reviews, want 1", r.calls.Load())
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	apiAudience := podStatus("ns", "sa", "p", "u", "")
	apiAudience.Audiences = []string{"https://kubernetes.default.svc"}
	noAudience := podStatus("ns", "sa", "p", "u", "")
	noAudience.Audiences = nil
	secretToken := podStatus("ns", "sa", "p", "u", "")
	secretToken.User.Extra = nil
	user := podStatus("ns", "sa", "p", "u", "")
	user.User.Username = "alice"
	twoPods := podStatus("ns", "sa", "p", "u", "")
	twoPods.User.Extra[ExtraPodName] = authnv1.ExtraValue{"p", "q"}
	malformedSA := podStatus("ns", "sa", "p", "u", "")
	malformedSA.User.Username = "system:serviceaccount:ns"
	for _, tc := range []struct {
		name   string
		status *authnv1.TokenReviewStatus
		token  string
		want   string
	}{
		{"unknown token", nil, tk("s3cr3t-unknown-QX7"), "did not accept"},
		{"empty token", nil, "", "no bearer token"},
		{"API audience", &apiAudience, tk("s3cr3t-QX7"), "do not include"},
		{"no audience", &noAudience, tk("s3cr3t-QX7"), "do not include"},
		{"secret-based token", &secretToken, tk("s3cr3t-QX7"), "not bound to a pod"},
		{"not a service account", &user, tk("s3cr3t-QX7"), "not a service account"},
		{"malformed service account", &malformedSA, tk("s3cr3t-QX7"), "not a service account"},
		{"two pod names", &twoPods, tk("s3cr3t-QX7"), "not bound to a pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{}}
			if tc.status != nil {
				r.answers[tc.token] = *tc.status
			}
			a := newAuth(t, r, clocktesting.NewFakeClock(t0))
			_, _, err := a.Authenticate(context.Background(), tc.token, "")
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUnauthenticated mentioning %q", err, tc.want)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error %q contains the token", err)
			}
			// A refused token is remembered for NegativeTTL.
			calls := r.calls.Load()
			_, cached, err2 := a.Authenticate(context.Background(), tc.token, "")
			if err2 == nil || (tc.token != "" && (!cached || r.calls.Load() != calls)) {
				t.Fatalf("second attempt: cached=%v err=%v calls %d->%d", cached, err2, calls, r.calls.Load())
			}
		})
	}
}

func TestAuthenticateDoesNotCacheTransientErrors(t *testing.T) {
	r := &fakeReviewer{err: errors.New("connection refused")}
	a := newAuth(t, r, clocktesting.NewFakeClock(t0))
	for range 3 {
		_, _, err := a.Authenticate(context.Background(), tk("t"), "")
		if err == nil || errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err = %v, want a transient error", err)
		}
	}
	if r.calls.Load() != 3 {
		t.Fatalf("%d reviews, want 3 (transient errors are not cached)", r.calls.Load())
	}
}

func TestAuthenticateSharesConcurrentReviews(t *testing.T) {
	r := &fakeReviewer{
		answers: map[string]authnv1.TokenReviewStatus{tk("t"): podStatus("ns", "sa", "p", "u", "")},
		block:   make(chan struct{}),
	}
	a := newAuth(t, r, clocktesting.NewFakeClock(t0))
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, _, err := a.Authenticate(context.Background(), tk("t"), "")
			errs <- err
		})
	}
	// Let the first review through once it has started.
	deadline := time.Now().Add(10 * time.Second)
	for r.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(r.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("%d reviews for 50 concurrent first requests, want 1", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{}}
	for i := range 500 {
		r.answers[tk(fmt.Sprint(i))] = podStatus("ns", "sa", fmt.Sprint("p", i), fmt.Sprint("u", i), "")
	}
	a := newAuth(t, r, clocktesting.NewFakeClock(t0))
	for i := range 500 {
		if _, _, err := a.Authenticate(context.Background(), tk(fmt.Sprint(i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	if a.Len() != 100 {
		t.Fatalf("cache holds %d reviews, want the bound 100", a.Len())
	}
}

func TestCheckPod(t *testing.T) {
	c := Caller{Namespace: "ns", ServiceAccount: "sa", PodName: "p", PodUID: "u1"}
	ok := Pod{Namespace: "ns", Name: "p", UID: "u1", NodeName: "node-a", ServiceAccount: "sa"}
	mod := func(f func(*Pod)) *Pod { p := ok; f(&p); return &p }
	withNode := c
	withNode.NodeName = "node-b"
	for _, tc := range []struct {
		name   string
		caller Caller
		pod    *Pod
		node   string
		want   string
		gone   bool
	}{
		{"own node", c, &ok, "node-a", "", false},
		{"other node", c, &ok, "node-b", "may read only", false},
		{"pod deleted", c, nil, "node-a", "does not exist", true},
		{"pod re-created", c, mod(func(p *Pod) { p.UID = "u2" }), "node-a", "re-created", true},
		{"other service account", c, mod(func(p *Pod) { p.ServiceAccount = "other" }), "node-a", "service account", false},
		{"finished", c, mod(func(p *Pod) { p.Finished = true }), "node-a", "finished", false},
		{"unscheduled", c, mod(func(p *Pod) { p.NodeName = "" }), "", "not scheduled", false},
		{"token node differs", withNode, &ok, "node-a", "issued on node", false},
		{"wrong pod looked up", c, mod(func(p *Pod) { p.Name = "q" }), "node-a", "looked up", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPod(tc.caller, tc.pod, tc.node)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrForbidden mentioning %q", err, tc.want)
			}
			if errors.Is(err, ErrPodGone) != tc.gone {
				t.Fatalf("errors.Is(err, ErrPodGone) = %v, want %v", !tc.gone, tc.gone)
			}
		})
	}
}
