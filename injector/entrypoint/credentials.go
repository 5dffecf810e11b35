package entrypoint

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	ecr "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	ecrapi "github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"k8s.io/client-go/kubernetes"
)

// kubeKeychain reads the pod's imagePullSecrets and those of its service
// account, as the kubelet would use them. Secrets that do not exist are
// skipped (the kubelet skips them too).
func kubeKeychain(ctx context.Context, client kubernetes.Interface, creds Credentials) (authn.Keychain, error) {
	kc, err := k8schain.New(ctx, client, k8schain.Options{
		Namespace:          creds.Namespace,
		ServiceAccountName: creds.ServiceAccountName,
		ImagePullSecrets:   creds.ImagePullSecrets,
	})
	if err != nil {
		return nil, fmt.Errorf("namespace %s (the injector needs get on secrets and serviceaccounts): %w", creds.Namespace, err)
	}
	return kc, nil
}

// ecrTokenTTL: ECR authorization tokens are valid for 12 hours.
const ecrTokenTTL = 6 * time.Hour

// ecrKeychain asks AWS for credentials of private ECR registries only, and
// keeps them in memory: the helper's own file cache needs a writable home,
// which the injector (read-only root file system) does not have.
type ecrKeychain struct {
	helper authn.Helper

	mu     sync.Mutex
	tokens map[string]ecrToken
}

type ecrToken struct {
	auth    authn.AuthConfig
	expires time.Time
}

func newECRKeychain(helper authn.Helper) *ecrKeychain {
	if helper == nil {
		helper = ecr.NewECRHelper(ecr.WithLogger(io.Discard))
	}
	return &ecrKeychain{helper: helper, tokens: map[string]ecrToken{}}
}

// IsECR says whether registry is a private ECR registry
// (<account>.dkr.ecr.<region>.amazonaws.com and its partitions).
func IsECR(registry string) bool {
	r, err := ecrapi.ExtractRegistry(registry)
	return err == nil && r.Service == ecrapi.ServiceECR
}

func (k *ecrKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

func (k *ecrKeychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	reg := target.RegistryStr()
	if !IsECR(reg) {
		return authn.Anonymous, nil
	}
	k.mu.Lock()
	tok, ok := k.tokens[reg]
	k.mu.Unlock()
	if ok && time.Now().Before(tok.expires) {
		return authn.FromConfig(tok.auth), nil
	}

	// The helper takes no context; do not let it hold the look-up past its deadline.
	type result struct {
		user, pass string
		err        error
	}
	ch := make(chan result, 1)
	go func() {
		u, p, err := k.helper.Get(reg)
		ch <- result{u, p, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w for %s: %w", errECRCredentials, reg, ctx.Err())
	}
	if res.err != nil {
		return nil, fmt.Errorf("%w for %s: %w", errECRCredentials, reg, res.err)
	}
	auth := authn.AuthConfig{Username: res.user, Password: res.pass}
	k.mu.Lock()
	k.tokens[reg] = ecrToken{auth: auth, expires: time.Now().Add(ecrTokenTTL)}
	k.mu.Unlock()
	return authn.FromConfig(auth), nil
}
