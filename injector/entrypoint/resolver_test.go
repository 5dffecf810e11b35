package entrypoint_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
)

// fakeClock is moved by the tests to expire cache entries without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newResolver(t *testing.T, reg *registrytest.Registry, mod func(*entrypoint.Options)) *entrypoint.Resolver {
	t.Helper()
	opts := entrypoint.Options{Transport: reg.Transport, DisableECR: true}
	if mod != nil {
		mod(&opts)
	}
	r, err := entrypoint.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func reasonOf(t *testing.T, err error) entrypoint.Reason {
	t.Helper()
	var e *entrypoint.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *entrypoint.Error", err, err)
	}
	return e.Reason
}

func TestLookupSingleArchOverTLS(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	ref, digest := reg.Push(t, "team/app:v1", registrytest.Image{Entrypoint: []string{"/app"}, Cmd: []string{"--serve", "a b"}})
	r := newResolver(t, reg, nil)

	cfg, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	want := &injector.ImageConfig{Entrypoint: []string{"/app"}, Cmd: []string{"--serve", "a b"}, Digest: digest.String()}
	if !equalConfig(cfg, want) {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}

func TestLookupIndexPicksPlatform(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	ref, digests := reg.PushIndex(t, "multi:v1",
		registrytest.Image{Platform: "linux/arm64", Entrypoint: []string{"/arm"}},
		registrytest.Image{Platform: "linux/amd64", Entrypoint: []string{"/amd"}, Cmd: []string{"x"}},
	)
	for _, tc := range []struct {
		platform string
		want     *injector.ImageConfig
	}{
		{"", &injector.ImageConfig{Entrypoint: []string{"/amd"}, Cmd: []string{"x"}, Digest: digests[1].String()}},
		{"linux/arm64", &injector.ImageConfig{Entrypoint: []string{"/arm"}, Digest: digests[0].String()}},
	} {
		t.Run("platform="+tc.platform, func(t *testing.T) {
			r := newResolver(t, reg, func(o *entrypoint.Options) { o.Platform = tc.platform })
			cfg, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{})
			if err != nil {
				t.Fatal(err)
			}
			if !equalConfig(cfg, tc.want) {
				t.Fatalf("got %+v, want %+v", cfg, tc.want)
			}
		})
	}

	t.Run("platform missing from the index", func(t *testing.T) {
		armOnly, _ := reg.PushIndex(t, "armonly:v1", registrytest.Image{Platform: "linux/arm64", Entrypoint: []string{"/arm"}})
		r := newResolver(t, reg, nil)
		_, err := r.Lookup(context.Background(), armOnly, entrypoint.Credentials{})
		if reasonOf(t, err) != entrypoint.ReasonNoPlatform {
			t.Fatalf("want no_platform, got %v", err)
		}
		if !strings.Contains(err.Error(), "linux/amd64") {
			t.Errorf("error should name the platform Fargate needs: %v", err)
		}
	})
}

func TestLookupWithPullSecrets(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true, User: "puller", Password: "s3cret"})
	ref, _ := reg.Push(t, "private/app:1.0", registrytest.Image{Entrypoint: []string{"/private"}})

	good := reg.PullSecret("apps", "regcred", "puller", "s3cret")
	bad := reg.PullSecret("apps", "wrongcred", "puller", "nope")
	saWithSecret := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Namespace: "apps", Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
	}
	plainSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "default"}}
	client := fake.NewClientset(good, bad, saWithSecret, plainSA)

	cases := []struct {
		name   string
		creds  entrypoint.Credentials
		reason entrypoint.Reason // "" means success
	}{
		{"pod imagePullSecrets", entrypoint.Credentials{Namespace: "apps", ImagePullSecrets: []string{"regcred"}}, ""},
		{"service account's pull secrets", entrypoint.Credentials{Namespace: "apps", ServiceAccountName: "builder"}, ""},
		{"no secret", entrypoint.Credentials{Namespace: "apps"}, entrypoint.ReasonUnauthorized},
		{"wrong password", entrypoint.Credentials{Namespace: "apps", ImagePullSecrets: []string{"wrongcred"}}, entrypoint.ReasonUnauthorized},
		{"secret of another namespace", entrypoint.Credentials{Namespace: "other", ImagePullSecrets: []string{"regcred"}}, entrypoint.ReasonUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newResolver(t, reg, func(o *entrypoint.Options) { o.Kubernetes = client })
			cfg, err := r.Lookup(context.Background(), ref, tc.creds)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(cfg.Entrypoint, []string{"/private"}) {
					t.Fatalf("entrypoint %v", cfg.Entrypoint)
				}
				return
			}
			if got := reasonOf(t, err); got != tc.reason {
				t.Fatalf("reason %s, want %s: %v", got, tc.reason, err)
			}
			for _, hint := range []string{"imagePullSecret", reg.Host} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("error does not mention %q: %v", hint, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope") {
				t.Errorf("error leaks a password: %v", err)
			}
		})
	}

	t.Run("one resolver keeps credentials apart", func(t *testing.T) {
		// Same image, same resolver: a pod without the secret must neither
		// spoil the look-up of a pod with it, nor be served what that pod
		// was allowed to read (by tag or by digest).
		r := newResolver(t, reg, func(o *entrypoint.Options) { o.Kubernetes = client })
		without := entrypoint.Credentials{Namespace: "other"}
		with := entrypoint.Credentials{Namespace: "apps", ImagePullSecrets: []string{"regcred"}}
		if _, err := r.Lookup(context.Background(), ref, without); err == nil {
			t.Fatal("look-up without credentials worked")
		}
		cfg, err := r.Lookup(context.Background(), ref, with)
		if err != nil {
			t.Fatalf("the failure of a pod without secrets was served to a pod with them: %v", err)
		}
		byDigest := strings.Split(ref, ":1.0")[0] + "@" + cfg.Digest
		if _, err := r.Lookup(context.Background(), byDigest, with); err != nil {
			t.Fatal(err)
		}
		for _, image := range []string{ref, byDigest} {
			if _, err := r.Lookup(context.Background(), image, entrypoint.Credentials{Namespace: "third"}); reasonOf(t, err) != entrypoint.ReasonUnauthorized {
				t.Fatalf("%s: a pod without pull secrets was served another pod's look-up: %v", image, err)
			}
		}
	})
}

func TestPullSecretsUnreadable(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	public, _ := reg.Push(t, "public:1", registrytest.Image{Entrypoint: []string{"/pub"}})
	private := registrytest.New(t, registrytest.Options{TLS: true, Hostname: "127.0.0.1", User: "u", Password: "p"})
	privRef, _ := private.Push(t, "priv:1", registrytest.Image{Entrypoint: []string{"/priv"}})

	client := fake.NewClientset()
	client.PrependReactor("get", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "regcred", errors.New("RBAC"))
	})
	creds := entrypoint.Credentials{Namespace: "apps", ImagePullSecrets: []string{"regcred"}}

	r := newResolver(t, reg, func(o *entrypoint.Options) { o.Kubernetes = client })
	if _, err := r.Lookup(context.Background(), public, creds); err != nil {
		t.Fatalf("a public image must resolve even when secrets cannot be read: %v", err)
	}
	r = newResolver(t, private, func(o *entrypoint.Options) { o.Kubernetes = client })
	_, err := r.Lookup(context.Background(), privRef, creds)
	if reasonOf(t, err) != entrypoint.ReasonUnauthorized || !strings.Contains(err.Error(), "pull secrets failed") {
		t.Fatalf("want unauthorized naming the secret read failure, got %v", err)
	}
}

func TestCache(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	tagged, _ := reg.Push(t, "app:v1", registrytest.Image{Entrypoint: []string{"/v1"}})
	latest, _ := reg.Push(t, "app:latest", registrytest.Image{Entrypoint: []string{"/latest"}})
	untagged := strings.TrimSuffix(latest, ":latest")
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	obs := &countingObserver{}
	r := newResolver(t, reg, func(o *entrypoint.Options) {
		o.Now = clock.Now
		o.TagTTL = time.Minute
		o.LatestTTL = 5 * time.Second
		o.Observer = obs
	})
	ctx := context.Background()
	lookup := func(ref, wantEntrypoint string) {
		t.Helper()
		cfg, err := r.Lookup(ctx, ref, entrypoint.Credentials{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Entrypoint[0] != wantEntrypoint {
			t.Fatalf("%s: entrypoint %v, want %s", ref, cfg.Entrypoint, wantEntrypoint)
		}
	}
	expectRequests := func(what string, want map[string]int) {
		t.Helper()
		got := reg.Counts()
		delete(got, "ping") // token/ping requests are the transport's business
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %d %s requests, want %d (all: %v)", what, got[k], k, v, got)
			}
		}
		reg.ResetCounts()
	}

	lookup(tagged, "/v1")
	expectRequests("first look-up", map[string]int{"manifest-head": 1, "manifest-get": 1, "blob-get": 1})
	lookup(tagged, "/v1")
	expectRequests("second look-up", map[string]int{"manifest-head": 0, "manifest-get": 0, "blob-get": 0})
	if obs.hits("config") != 1 || obs.hits("tag") != 1 {
		t.Errorf("observer saw config hits %d, tag hits %d; want 1 and 1", obs.hits("config"), obs.hits("tag"))
	}

	lookup(latest, "/latest")
	lookup(untagged, "/latest")
	expectRequests(":latest and untagged are one reference", map[string]int{"manifest-head": 1, "manifest-get": 1, "blob-get": 1})

	clock.Advance(6 * time.Second) // past LatestTTL, within TagTTL
	lookup(tagged, "/v1")
	lookup(latest, "/latest")
	expectRequests("after LatestTTL", map[string]int{"manifest-head": 1, "manifest-get": 0, "blob-get": 0})

	// The tag moves: the cached digest is used until TagTTL, then re-asked.
	reg.Push(t, "app:v1", registrytest.Image{Entrypoint: []string{"/v1-rebuilt"}})
	lookup(tagged, "/v1")
	clock.Advance(time.Minute)
	lookup(tagged, "/v1-rebuilt")
	expectRequests("after TagTTL, moved tag", map[string]int{"manifest-head": 1, "manifest-get": 1, "blob-get": 1})

	// A reference by digest: one HEAD (may these credentials read it?), the config from the cache.
	cfg, err := r.Lookup(ctx, tagged, entrypoint.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	byDigest := strings.Split(tagged, ":v1")[0] + "@" + cfg.Digest
	lookup(byDigest, "/v1-rebuilt")
	lookup(byDigest, "/v1-rebuilt")
	expectRequests("by digest, config cached", map[string]int{"manifest-head": 1, "manifest-get": 0, "blob-get": 0})
}

func TestConfigCacheIsBounded(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	var refs []string
	for i := range 3 {
		ref, d := reg.Push(t, fmt.Sprintf("app%d:v1", i), registrytest.Image{Entrypoint: []string{fmt.Sprint(i)}})
		refs = append(refs, strings.Split(ref, ":v1")[0]+"@"+d.String())
	}
	r := newResolver(t, reg, func(o *entrypoint.Options) { o.ConfigCacheSize = 2 })
	for _, ref := range refs {
		if _, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	reg.ResetCounts()
	if _, err := r.Lookup(context.Background(), refs[0], entrypoint.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if reg.Counts()["blob-get"] != 1 {
		t.Fatalf("the oldest of 3 configs in a cache of 2 was not evicted: %v", reg.Counts())
	}
}

func TestNegativeCache(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r := newResolver(t, reg, func(o *entrypoint.Options) { o.Now = clock.Now; o.NegativeTTL = 10 * time.Second })
	missing := reg.Host + "/nope:v1"

	for range 3 {
		_, err := r.Lookup(context.Background(), missing, entrypoint.Credentials{})
		if reasonOf(t, err) != entrypoint.ReasonNotFound {
			t.Fatalf("want not_found, got %v", err)
		}
		if !strings.Contains(err.Error(), "check the image name") {
			t.Errorf("hint missing: %v", err)
		}
	}
	if n := reg.Counts()["manifest-head"]; n != 1 {
		t.Fatalf("a failure within NegativeTTL went to the registry again: %d HEADs", n)
	}
	// Pushed in the meantime: found once the failure has expired.
	reg.Push(t, "nope:v1", registrytest.Image{Entrypoint: []string{"/now"}})
	clock.Advance(11 * time.Second)
	if _, err := r.Lookup(context.Background(), missing, entrypoint.Credentials{}); err != nil {
		t.Fatalf("after NegativeTTL: %v", err)
	}
}

func TestBudgetWithHangingRegistry(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	ref, _ := reg.Push(t, "slow:v1", registrytest.Image{Entrypoint: []string{"/slow"}})
	r := newResolver(t, reg, func(o *entrypoint.Options) {
		o.Budget = 300 * time.Millisecond
		o.FetchTimeout = time.Minute
	})
	reg.Hang()

	// The registry never answers while hanging: returning at all is the budget at work.
	images := r.Resolve(context.Background(), []injector.ImageRequest{{Container: "app", Image: ref}}, entrypoint.Credentials{})
	err := images[ref].Err
	if reasonOf(t, err) != entrypoint.ReasonTimeout {
		t.Fatalf("want timeout, got %v", err)
	}
	for _, want := range []string{"budget", reg.Host} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("timeout error does not mention %q: %v", want, err)
		}
	}

	// The look-up goes on; once the registry answers, the next pod gets a cached answer.
	reg.Release()
	waitFor(t, func() bool {
		cfg, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{})
		return err == nil && cfg.Entrypoint[0] == "/slow"
	})
}

func TestFetchTimeoutIsRemembered(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	ref, _ := reg.Push(t, "stuck:v1", registrytest.Image{Entrypoint: []string{"/x"}})
	r := newResolver(t, reg, func(o *entrypoint.Options) {
		o.Budget = 5 * time.Second
		o.FetchTimeout = 200 * time.Millisecond
		o.NegativeTTL = time.Hour
	})
	reg.Hang()
	_, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonTimeout {
		t.Fatalf("want timeout, got %v", err)
	}
	reg.Release()
	reg.ResetCounts()
	_, err = r.Lookup(context.Background(), ref, entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonTimeout || len(reg.Counts()) != 0 {
		t.Fatalf("a timed-out registry was asked again within NegativeTTL: %v, %v", err, reg.Counts())
	}
}

func TestConcurrentPodsShareOneLookup(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	ref, _ := reg.Push(t, "popular:v1", registrytest.Image{Entrypoint: []string{"/pop"}})
	obs := &countingObserver{}
	r := newResolver(t, reg, func(o *entrypoint.Options) { o.Observer = obs })
	reg.Hang()

	const pods = 50
	results := make(chan error, pods)
	for range pods {
		go func() {
			cfg, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{Namespace: "apps"})
			if err == nil && cfg.Entrypoint[0] != "/pop" {
				err = fmt.Errorf("entrypoint %v", cfg.Entrypoint)
			}
			results <- err
		}()
	}
	// All 50 have missed the tag cache (and so joined or started the flight)
	// while the registry holds the first request.
	waitFor(t, func() bool { return obs.misses("tag") >= pods && reg.Waiting() >= 1 })
	reg.Release()
	for range pods {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	c := reg.Counts()
	if c["manifest-head"] != 1 || c["manifest-get"] != 1 || c["blob-get"] != 1 {
		t.Fatalf("50 concurrent pods made more than one look-up: %v", c)
	}
}

func TestResolveManyContainers(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	a, _ := reg.Push(t, "a:1", registrytest.Image{Entrypoint: []string{"/a"}})
	b, _ := reg.Push(t, "b:1", registrytest.Image{Cmd: []string{"/b"}})
	missing := reg.Host + "/missing:1"
	r := newResolver(t, reg, nil)
	images := r.Resolve(context.Background(), []injector.ImageRequest{
		{Container: "one", Image: a}, {Container: "two", Image: b}, {Container: "three", Image: a}, {Container: "four", Image: missing},
	}, entrypoint.Credentials{})
	if len(images) != 3 {
		t.Fatalf("want 3 distinct images, got %d: %v", len(images), images)
	}
	if images[a].Err != nil || images[a].Config.Entrypoint[0] != "/a" {
		t.Errorf("a: %+v", images[a])
	}
	if images[b].Err != nil || images[b].Config.Cmd[0] != "/b" || len(images[b].Config.Entrypoint) != 0 {
		t.Errorf("b: %+v", images[b])
	}
	if images[missing].Err == nil || images[missing].Config != nil {
		t.Errorf("missing: %+v", images[missing])
	}
}

func TestPlainHTTPRegistries(t *testing.T) {
	// A registry by a name that is not loopback, speaking plain HTTP.
	reg := registrytest.New(t, registrytest.Options{Hostname: "registry.internal.test"})
	ref, _ := reg.Push(t, "app:v1", registrytest.Image{Entrypoint: []string{"/plain"}})

	r := newResolver(t, reg, nil)
	_, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonPlainHTTP || !strings.Contains(err.Error(), "insecure") {
		t.Fatalf("want plain_http with the insecure-registries hint, got %v", err)
	}

	r = newResolver(t, reg, func(o *entrypoint.Options) { o.InsecureRegistries = []string{reg.Host} })
	cfg, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{})
	if err != nil || cfg.Entrypoint[0] != "/plain" {
		t.Fatalf("with the registry marked insecure: %+v, %v", cfg, err)
	}

	// Loopback registries (the e2e test's) are plain HTTP without a setting.
	loop := registrytest.New(t, registrytest.Options{})
	loopRef, _ := loop.Push(t, "app:v1", registrytest.Image{Entrypoint: []string{"/loop"}})
	r = newResolver(t, loop, nil)
	if cfg, err := r.Lookup(context.Background(), loopRef, entrypoint.Credentials{}); err != nil || cfg.Entrypoint[0] != "/loop" {
		t.Fatalf("loopback registry: %+v, %v", cfg, err)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true, Hostname: "registry.internal.test"})
	ref, _ := reg.Push(t, "app:v1", registrytest.Image{Entrypoint: []string{"/x"}})
	r, err := entrypoint.New(entrypoint.Options{Transport: reg.NewTransport(false), DisableECR: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Lookup(context.Background(), ref, entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonTLS {
		t.Fatalf("want tls, got %v", err)
	}
}

func TestUnreachableRegistry(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true})
	r := newResolver(t, reg, nil)
	// The test transport refuses every host but the registry's.
	_, err := r.Lookup(context.Background(), "elsewhere.test/app:v1", entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonRegistry && reasonOf(t, err) != entrypoint.ReasonUnreachable {
		t.Fatalf("want unreachable, got %v", err)
	}
	if !strings.Contains(err.Error(), "elsewhere.test") {
		t.Errorf("error does not name the registry: %v", err)
	}
}

func TestInvalidReference(t *testing.T) {
	r, err := entrypoint.New(entrypoint.Options{DisableECR: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Lookup(context.Background(), "UPPER/Case::bad", entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonInvalid {
		t.Fatalf("want invalid_reference, got %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []entrypoint.Options{
		{Platform: "amd64"},
		{Platform: "linux/"},
		{InsecureRegistries: []string{"http://r.test/"}},
	} {
		if _, err := entrypoint.New(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// ecrHelper stands in for AWS: the registry protocol stays real.
type ecrHelper struct {
	calls atomic.Int32
	user  string
	pass  string
	err   error
}

func (h *ecrHelper) Get(serverURL string) (string, string, error) {
	h.calls.Add(1)
	return h.user, h.pass, h.err
}

func TestECRCredentialsOnlyForECRHosts(t *testing.T) {
	const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	ecrReg := registrytest.New(t, registrytest.Options{TLS: true, Hostname: ecrHost, User: "AWS", Password: "token"})
	a, _ := ecrReg.Push(t, "team/a:1", registrytest.Image{Entrypoint: []string{"/a"}})
	b, _ := ecrReg.Push(t, "team/b:1", registrytest.Image{Entrypoint: []string{"/b"}})
	if !entrypoint.IsECR(ecrReg.Host) {
		t.Fatalf("%s not recognised as ECR", ecrReg.Host)
	}

	helper := &ecrHelper{user: "AWS", pass: "token"}
	r := newResolver(t, ecrReg, func(o *entrypoint.Options) { o.DisableECR = false; o.ECR = helper })
	for _, ref := range []string{a, b} {
		if _, err := r.Lookup(context.Background(), ref, entrypoint.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := helper.calls.Load(); n != 1 {
		t.Fatalf("ECR asked %d times for one registry, want 1 (token kept in memory)", n)
	}

	other := registrytest.New(t, registrytest.Options{TLS: true, Hostname: "registry.internal.test"})
	o, _ := other.Push(t, "x:1", registrytest.Image{Entrypoint: []string{"/x"}})
	otherHelper := &ecrHelper{err: errors.New("must not be called")}
	r = newResolver(t, other, func(o *entrypoint.Options) { o.DisableECR = false; o.ECR = otherHelper })
	if _, err := r.Lookup(context.Background(), o, entrypoint.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if n := otherHelper.calls.Load(); n != 0 {
		t.Fatalf("ECR asked %d times for a non-ECR registry", n)
	}

	failing := &ecrHelper{err: errors.New("no IAM role")}
	r = newResolver(t, ecrReg, func(o *entrypoint.Options) { o.DisableECR = false; o.ECR = failing })
	_, err := r.Lookup(context.Background(), a, entrypoint.Credentials{})
	if reasonOf(t, err) != entrypoint.ReasonUnauthorized || !strings.Contains(err.Error(), "ecr:GetAuthorizationToken") {
		t.Fatalf("want unauthorized with the IAM hint, got %v", err)
	}
}

type countingObserver struct {
	mu     sync.Mutex
	hit    map[string]int
	miss   map[string]int
	lookup map[string]int
}

func (o *countingObserver) CacheLookup(cache string, hit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hit == nil {
		o.hit, o.miss = map[string]int{}, map[string]int{}
	}
	if hit {
		o.hit[cache]++
	} else {
		o.miss[cache]++
	}
}

func (o *countingObserver) RegistryLookup(_ time.Duration, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lookup == nil {
		o.lookup = map[string]int{}
	}
	o.lookup[outcome]++
}

func (o *countingObserver) hits(c string) int   { o.mu.Lock(); defer o.mu.Unlock(); return o.hit[c] }
func (o *countingObserver) misses(c string) int { o.mu.Lock(); defer o.mu.Unlock(); return o.miss[c] }

func equalConfig(a, b *injector.ImageConfig) bool {
	return a != nil && b != nil && slices.Equal(a.Entrypoint, b.Entrypoint) && slices.Equal(a.Cmd, b.Cmd) && a.Digest == b.Digest
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
