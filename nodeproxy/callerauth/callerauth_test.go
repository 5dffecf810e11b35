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
}

func (f *fakeReviewer) review(_ context.Context, token string, audiences []string) (authnv1.TokenReviewStatus, error) {
	f.calls.Add(1)
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

func jwtWithExp(exp time.Time) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"aud":["x"],"exp":%d}`, exp.Unix()))) + ".c2ln"
}

func newAuth(t *testing.T, r *fakeReviewer, clock *clocktesting.FakeClock) *Authenticator {
	t.Helper()
	a, err := New(r.review, Options{Audience: aud, TTL: 2 * time.Minute, NegativeTTL: 10 * time.Second, CacheSize: 100, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthenticateAcceptsBoundTokenAndCaches(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{
		"tok-a": podStatus("shop", "cart", "cart-0", "uid-a", "node-a"),
	}}
	a := newAuth(t, r, clock)
	ctx := context.Background()
	c, cached, err := a.Authenticate(ctx, "tok-a")
	if err != nil || cached {
		t.Fatalf("first call: %v, cached=%v", err, cached)
	}
	want := Caller{Namespace: "shop", ServiceAccount: "cart", PodName: "cart-0", PodUID: "uid-a", NodeName: "node-a"}
	if c != want {
		t.Fatalf("caller = %+v, want %+v", c, want)
	}
	for range 10 {
		c2, cached, err := a.Authenticate(ctx, "tok-a")
		if err != nil || !cached || c2 != want {
			t.Fatalf("cached call: %+v %v %v", c2, cached, err)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Fatalf("%d reviews for 11 requests, want 1", n)
	}
	clock.Step(2*time.Minute + time.Second)
	if _, cached, err := a.Authenticate(ctx, "tok-a"); err != nil || cached {
		t.Fatalf("after TTL: cached=%v err=%v", cached, err)
	}
	if n := r.calls.Load(); n != 2 {
		t.Fatalf("%d reviews after TTL expiry, want 2", n)
	}
	a.Forget("tok-a")
	if _, cached, _ := a.Authenticate(ctx, "tok-a"); cached {
		t.Fatal("Forget did not drop the cached review")
	}
}

func TestAuthenticateCacheNeverOutlivesToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := clocktesting.NewFakeClock(now)
	tok := jwtWithExp(now.Add(30 * time.Second))
	r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{tok: podStatus("ns", "sa", "p", "u", "")}}
	a := newAuth(t, r, clock)
	if _, _, err := a.Authenticate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clock.Step(31 * time.Second)
	if _, cached, _ := a.Authenticate(context.Background(), tok); cached {
		t.Fatal("review cached past the token's exp claim")
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
		{"unknown token", nil, "s3cr3t-unknown-QX7", "did not accept"},
		{"empty token", nil, "", "no bearer token"},
		{"API audience", &apiAudience, "s3cr3t-QX7", "do not include"},
		{"no audience", &noAudience, "s3cr3t-QX7", "do not include"},
		{"secret-based token", &secretToken, "s3cr3t-QX7", "not bound to a pod"},
		{"not a service account", &user, "s3cr3t-QX7", "not a service account"},
		{"malformed service account", &malformedSA, "s3cr3t-QX7", "not a service account"},
		{"two pod names", &twoPods, "s3cr3t-QX7", "not bound to a pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeReviewer{answers: map[string]authnv1.TokenReviewStatus{}}
			if tc.status != nil {
				r.answers[tc.token] = *tc.status
			}
			a := newAuth(t, r, clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)))
			_, _, err := a.Authenticate(context.Background(), tc.token)
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUnauthenticated mentioning %q", err, tc.want)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error %q contains the token", err)
			}
			// A refused token is remembered for NegativeTTL.
			calls := r.calls.Load()
			_, cached, err2 := a.Authenticate(context.Background(), tc.token)
			if err2 == nil || (tc.token != "" && (!cached || r.calls.Load() != calls)) {
				t.Fatalf("second attempt: cached=%v err=%v calls %d->%d", cached, err2, calls, r.calls.Load())
			}
		})
	}
}

func TestAuthenticateDoesNotCacheTransientErrors(t *testing.T) {
	r := &fakeReviewer{err: errors.New("connection refused")}
	a := newAuth(t, r, clocktesting.NewFakeClock(time.Now()))
	for range 3 {
		_, _, err := a.Authenticate(context.Background(), "tok")
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
		answers: map[string]authnv1.TokenReviewStatus{"tok": podStatus("ns", "sa", "p", "u", "")},
		block:   make(chan struct{}),
	}
	a := newAuth(t, r, clocktesting.NewFakeClock(time.Now()))
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, _, err := a.Authenticate(context.Background(), "tok")
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
		r.answers[fmt.Sprint("tok-", i)] = podStatus("ns", "sa", fmt.Sprint("p", i), fmt.Sprint("u", i), "")
	}
	a := newAuth(t, r, clocktesting.NewFakeClock(time.Now()))
	for i := range 500 {
		if _, _, err := a.Authenticate(context.Background(), fmt.Sprint("tok-", i)); err != nil {
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
