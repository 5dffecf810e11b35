// Package entrypoint reads the ENTRYPOINT and CMD of container images from
// their registries, for containers whose pod spec has no command.
//
// A look-up is on the path of every pod creation the webhook sees, so it is
// bounded in time (a budget per admission), shared (50 pods of one rollout
// make one registry call), and cached: configs by manifest digest (immutable,
// kept in a bounded LRU), tag-to-digest answers only briefly (tags move;
// `:latest` and untagged references even more briefly), failures briefly too
// so that a broken registry does not slow down every pod.
package entrypoint

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	"github.com/fargate-otel/fargate-otel/injector"
)

// Defaults of Options.
const (
	DefaultPlatform        = "linux/amd64"
	DefaultBudget          = 4 * time.Second
	DefaultFetchTimeout    = 10 * time.Second
	DefaultConfigCacheSize = 2048
	DefaultTagTTL          = time.Minute
	DefaultLatestTTL       = 5 * time.Second
	DefaultNegativeTTL     = 10 * time.Second
	// credentialsTTL is how long the pull secrets read for one
	// namespace/service account are reused: a fixed secret takes effect soon.
	credentialsTTL = 10 * time.Second
)

// Options configure a Resolver. The zero value is usable: every field has a default.
type Options struct {
	// Platform selects the manifest of a multi-arch index, "os/arch[/variant]".
	// Fargate runs linux/amd64.
	Platform string
	// InsecureRegistries are registries (host or host:port, as written in
	// image references) reached over plain HTTP.
	InsecureRegistries []string
	// Budget bounds one Resolve call (all containers of a pod, concurrently).
	// Keep it well under the webhook's timeout.
	Budget time.Duration
	// FetchTimeout bounds one registry look-up. A look-up that outlives the
	// Budget of the pod that started it keeps running until FetchTimeout and
	// fills the cache for the next pod.
	FetchTimeout time.Duration
	// ConfigCacheSize bounds the number of image configs kept (by digest).
	ConfigCacheSize int
	// TagTTL is how long a tag's digest is trusted before it is asked again.
	TagTTL time.Duration
	// LatestTTL replaces TagTTL for `:latest` and references without a tag.
	LatestTTL time.Duration
	// NegativeTTL is how long a failed look-up is remembered.
	NegativeTTL time.Duration

	// Transport carries registry requests; default remote.DefaultTransport.
	Transport http.RoundTripper
	// Kubernetes reads pods' imagePullSecrets and their service accounts'
	// pull secrets; nil means no pull secrets (ECR and anonymous only).
	Kubernetes kubernetes.Interface
	// ECR gives credentials for private ECR registries; it is only asked for
	// hosts of the form <account>.dkr.ecr.<region>.amazonaws.com, so that
	// other look-ups never touch AWS. Nil means the ecr-login helper;
	// DisableECR turns it off.
	ECR        authn.Helper
	DisableECR bool

	// OnThisMachine says the look-ups run on a person's machine (the CLI's
	// --resolve) rather than in the injector: the hints of failed look-ups
	// then speak of this machine and the CLI's flags.
	OnThisMachine bool

	// Observer receives metrics; nil means none.
	Observer Observer
	// Now is the clock of the caches (tests move it); default time.Now.
	Now func() time.Time
}

// Observer is told about cache use and registry look-ups, for metrics.
type Observer interface {
	// CacheLookup reports a hit or miss of one cache: "tag", "config" or "negative".
	CacheLookup(cache string, hit bool)
	// RegistryLookup reports one look-up that went to a registry, how long it
	// took and its outcome (Reason, "ok" when it worked).
	RegistryLookup(d time.Duration, outcome string)
}

// Credentials says whose pull secrets may be used: the pod's.
type Credentials struct {
	Namespace          string
	ServiceAccountName string
	ImagePullSecrets   []string
}

func (c Credentials) key() string {
	secrets := slices.Clone(c.ImagePullSecrets)
	slices.Sort(secrets)
	sa := c.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return c.Namespace + "/" + sa + "/" + strings.Join(secrets, ",")
}

// Resolver looks image configs up. It is safe for concurrent use.
type Resolver struct {
	platform     v1.Platform
	insecure     map[string]bool
	budget       time.Duration
	fetchTimeout time.Duration
	tagTTL       time.Duration
	latestTTL    time.Duration
	negativeTTL  time.Duration
	transport    http.RoundTripper
	kube         kubernetes.Interface
	ecr          authn.Keychain
	observer     Observer
	local        bool

	configs     *cache.LRUExpireCache // digest|platform -> *injector.ImageConfig
	tags        *cache.LRUExpireCache // canonical tag ref -> v1.Hash
	failures    *cache.LRUExpireCache // ref|credentials -> *Error
	credentials *cache.LRUExpireCache // credentials -> authn.Keychain
	flights     singleflight.Group
}

// configTTL: configs are immutable by digest; the LRU bound is what evicts them.
const configTTL = 24 * time.Hour

// New builds a Resolver from opts, filling in defaults.
func New(opts Options) (*Resolver, error) {
	platform := opts.Platform
	if platform == "" {
		platform = DefaultPlatform
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("image platform %q: want os/arch[/variant], e.g. linux/amd64", platform)
	}
	r := &Resolver{
		platform:     *p,
		insecure:     map[string]bool{},
		budget:       orDefault(opts.Budget, DefaultBudget),
		fetchTimeout: orDefault(opts.FetchTimeout, DefaultFetchTimeout),
		tagTTL:       orDefault(opts.TagTTL, DefaultTagTTL),
		latestTTL:    orDefault(opts.LatestTTL, DefaultLatestTTL),
		negativeTTL:  orDefault(opts.NegativeTTL, DefaultNegativeTTL),
		transport:    opts.Transport,
		kube:         opts.Kubernetes,
		observer:     opts.Observer,
		local:        opts.OnThisMachine,
	}
	for _, reg := range opts.InsecureRegistries {
		reg = strings.TrimSpace(reg)
		if reg == "" || strings.ContainsAny(reg, "/ ") {
			return nil, fmt.Errorf("insecure registry %q: want a host or host:port as written in image references", reg)
		}
		r.insecure[reg] = true
	}
	if r.transport == nil {
		r.transport = remote.DefaultTransport
	}
	if r.observer == nil {
		r.observer = nopObserver{}
	}
	if !opts.DisableECR {
		r.ecr = newECRKeychain(opts.ECR)
	}
	size := opts.ConfigCacheSize
	if size <= 0 {
		size = DefaultConfigCacheSize
	}
	clock := clockFunc(time.Now)
	if opts.Now != nil {
		clock = clockFunc(opts.Now)
	}
	r.configs = cache.NewLRUExpireCacheWithClock(size, clock)
	r.tags = cache.NewLRUExpireCacheWithClock(size, clock)
	r.failures = cache.NewLRUExpireCacheWithClock(size, clock)
	r.credentials = cache.NewLRUExpireCacheWithClock(256, clock)
	return r, nil
}

// Budget is the time one Resolve call may take.
func (r *Resolver) Budget() time.Duration { return r.budget }

// Resolve looks up every requested image concurrently, within the budget,
// with the pod's credentials. Every distinct image of reqs gets an entry.
// Answers in the caches cost no goroutine and no timer.
func (r *Resolver) Resolve(ctx context.Context, reqs []injector.ImageRequest, creds Credentials) injector.Images {
	images := make(injector.Images, len(reqs))
	var misses []probe
	for _, req := range reqs {
		if _, seen := images[req.Image]; seen || slices.ContainsFunc(misses, func(p probe) bool { return p.image == req.Image }) {
			continue
		}
		p := r.fromCache(req.Image, creds)
		if p.done {
			images[req.Image] = injector.ImageLookup{Config: p.cfg, Err: p.err}
			continue
		}
		misses = append(misses, p)
	}
	if len(misses) == 0 {
		return images
	}
	ctx, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	if len(misses) == 1 {
		cfg, err := r.fly(ctx, misses[0], creds)
		images[misses[0].image] = injector.ImageLookup{Config: cfg, Err: err}
		return images
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range misses {
		wg.Go(func() {
			cfg, err := r.fly(ctx, p, creds)
			mu.Lock()
			defer mu.Unlock()
			images[p.image] = injector.ImageLookup{Config: cfg, Err: err}
		})
	}
	wg.Wait()
	return images
}

// Lookup returns the config of one image, within the budget. Errors are
// *Error: they say what failed and what the user can do about it.
func (r *Resolver) Lookup(ctx context.Context, image string, creds Credentials) (*injector.ImageConfig, error) {
	p := r.fromCache(image, creds)
	if p.done {
		return p.cfg, p.err
	}
	ctx, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	return r.fly(ctx, p, creds)
}

// probe is what the caches say about one image: the answer (done), or
// what a registry look-up can start from.
type probe struct {
	image   string
	ref     name.Reference
	failKey string
	digest  v1.Hash
	known   bool // digest is known: only the config is missing

	done bool
	cfg  *injector.ImageConfig
	err  error
}

func (r *Resolver) fromCache(image string, creds Credentials) probe {
	p := probe{image: image}
	ref, err := r.parse(image)
	if err != nil {
		p.done, p.err = true, err
		return p
	}
	p.ref = ref
	p.failKey = ref.Name() + "|" + creds.key()
	if v, ok := r.failures.Get(p.failKey); ok {
		r.observer.CacheLookup("negative", true)
		p.done, p.err = true, v.(*Error)
		return p
	}
	r.observer.CacheLookup("negative", false)
	p.digest, p.known = r.cachedDigest(ref, creds)
	if p.known {
		if cfg, ok := r.cachedConfig(p.digest); ok {
			p.done, p.cfg = true, cfg
		}
	}
	return p
}

// fly asks the registry, one flight per image and credentials: concurrent
// callers share it.
func (r *Resolver) fly(ctx context.Context, p probe, creds Credentials) (*injector.ImageConfig, error) {
	ch := r.flights.DoChan(p.failKey, func() (any, error) {
		// Detached from the caller: the look-up finishes (within
		// FetchTimeout) even when the pod that started it has given up, so
		// that the next pod finds the answer in the cache.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.fetchTimeout)
		defer cancel()
		start := time.Now()
		cfg, err := r.fetch(fctx, p.ref, p.digest, p.known, creds)
		if err != nil {
			e := classify(p.image, p.ref, err, r.fetchTimeout, r.platform.String())
			if r.local {
				e.Hint = localHint(e)
			}
			r.observer.RegistryLookup(time.Since(start), string(e.Reason))
			r.failures.Add(p.failKey, e, r.negativeTTL)
			return nil, e
		}
		r.observer.RegistryLookup(time.Since(start), "ok")
		return cfg, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*injector.ImageConfig), nil
	case <-ctx.Done():
		e := budgetError(p.image, p.ref, ctx.Err(), r.budget)
		if r.local {
			e.Hint = localHint(e)
		}
		return nil, e
	}
}

func (r *Resolver) parse(image string) (name.Reference, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, &Error{Image: image, Reason: ReasonInvalid, Err: err,
			Hint: "fix the image reference in the pod spec"}
	}
	if r.insecure[ref.Context().RegistryStr()] {
		ref, err = name.ParseReference(image, name.Insecure)
		if err != nil {
			return nil, &Error{Image: image, Reason: ReasonInvalid, Err: err, Hint: "fix the image reference in the pod spec"}
		}
	}
	return ref, nil
}

// cachedDigest is the manifest digest ref points to, when these credentials
// have recently been allowed to read it. Answers are kept per credentials:
// a pod must not learn the command of an image its own pull secrets cannot
// read because another namespace's could. (Configs are shared by digest: once
// the registry has said who may read which digest.)
func (r *Resolver) cachedDigest(ref name.Reference, creds Credentials) (v1.Hash, bool) {
	v, ok := r.tags.Get(accessKey(ref, creds))
	r.observer.CacheLookup("tag", ok)
	if !ok {
		return v1.Hash{}, false
	}
	return v.(v1.Hash), true
}

func accessKey(ref name.Reference, creds Credentials) string {
	return ref.Name() + "|" + creds.key()
}

func (r *Resolver) configKey(digest v1.Hash) string {
	return digest.String() + "|" + r.platform.String()
}

func (r *Resolver) cachedConfig(digest v1.Hash) (*injector.ImageConfig, bool) {
	v, ok := r.configs.Get(r.configKey(digest))
	r.observer.CacheLookup("config", ok)
	if !ok {
		return nil, false
	}
	return cloneConfig(v.(*injector.ImageConfig)), true
}

// fetch asks the registry: the reference's digest (HEAD: cheap, not rate
// limited on Docker Hub, and proof that the pod's credentials may read the
// image), then, unless that digest's config is cached, the manifest (the
// platform's child of an index) and the config blob.
func (r *Resolver) fetch(ctx context.Context, ref name.Reference, digest v1.Hash, known bool, creds Credentials) (*injector.ImageConfig, error) {
	keychain, credErr := r.keychain(ctx, creds)
	puller, err := remote.NewPuller(
		remote.WithTransport(r.transport),
		remote.WithAuthFromKeychain(keychain),
		remote.WithPlatform(r.platform),
		remote.WithUserAgent("fargate-otel-injector"),
		// The default backoff (1s, 3s) does not fit a budget of seconds.
		remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
	)
	if err != nil {
		return nil, err
	}
	cfg, err := r.fetchWith(ctx, puller, ref, accessKey(ref, creds), digest, known)
	if err != nil && credErr != nil {
		return nil, &credentialsError{err: err, credErr: credErr}
	}
	return cfg, err
}

// credentialsError is a failed look-up made without the pod's pull secrets,
// because they could not be read.
type credentialsError struct{ err, credErr error }

func (e *credentialsError) Error() string {
	return fmt.Sprintf("%v (reading pull secrets failed: %v)", e.err, e.credErr)
}
func (e *credentialsError) Unwrap() error { return e.err }

func (r *Resolver) fetchWith(ctx context.Context, puller *remote.Puller, ref name.Reference, key string, digest v1.Hash, known bool) (*injector.ImageConfig, error) {
	if !known {
		desc, err := puller.Head(ctx, ref)
		if err != nil && headUnsupported(err) {
			var d *remote.Descriptor
			if d, err = puller.Get(ctx, ref); err == nil {
				desc = &d.Descriptor
			}
		}
		if err != nil {
			return nil, err
		}
		digest = desc.Digest
		r.tags.Add(key, digest, r.tagTTLOf(ref))
		if cfg, ok := r.cachedConfig(digest); ok {
			return cfg, nil
		}
	}

	desc, err := puller.Get(ctx, ref.Context().Digest(digest.String()))
	if err != nil {
		return nil, err
	}
	img, err := desc.Image() // the platform's child when desc is an index
	if err != nil {
		return nil, err
	}
	file, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cfg := &injector.ImageConfig{
		Entrypoint: slices.Clone(file.Config.Entrypoint),
		Cmd:        slices.Clone(file.Config.Cmd),
		Digest:     manifestDigest.String(),
	}
	r.configs.Add(r.configKey(digest), cfg, configTTL)
	return cloneConfig(cfg), nil
}

// tagTTLOf: `:latest` and untagged references (which mean :latest) move the
// most often, so their digest is re-asked sooner.
func (r *Resolver) tagTTLOf(ref name.Reference) time.Duration {
	if t, ok := ref.(name.Tag); ok && t.TagStr() == "latest" {
		return r.latestTTL
	}
	return r.tagTTL
}

// keychain is the pod's pull secrets (its own and its service account's),
// then ECR for ECR hosts, then anonymous. A failure to read the secrets is
// returned next to a usable keychain: a public image still resolves.
func (r *Resolver) keychain(ctx context.Context, creds Credentials) (authn.Keychain, error) {
	var chain []authn.Keychain
	var credErr error
	if r.kube != nil && creds.Namespace != "" {
		key := creds.key()
		if v, ok := r.credentials.Get(key); ok {
			chain = append(chain, v.(authn.Keychain))
		} else {
			kc, err := kubeKeychain(ctx, r.kube, creds)
			if err != nil {
				credErr = err
			} else {
				r.credentials.Add(key, kc, credentialsTTL)
				chain = append(chain, kc)
			}
		}
	}
	if r.ecr != nil {
		chain = append(chain, r.ecr)
	}
	return authn.NewMultiKeychain(chain...), credErr
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func cloneConfig(c *injector.ImageConfig) *injector.ImageConfig {
	return &injector.ImageConfig{Entrypoint: slices.Clone(c.Entrypoint), Cmd: slices.Clone(c.Cmd), Digest: c.Digest}
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

type nopObserver struct{}

func (nopObserver) CacheLookup(string, bool)             {}
func (nopObserver) RegistryLookup(time.Duration, string) {}
