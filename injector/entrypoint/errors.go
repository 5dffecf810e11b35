package entrypoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Reason is the kind of failure of a look-up (also a metrics label).
type Reason string

const (
	ReasonUnauthorized Reason = "unauthorized"
	ReasonNotFound     Reason = "not_found"
	ReasonTimeout      Reason = "timeout"
	ReasonPlainHTTP    Reason = "plain_http"
	ReasonTLS          Reason = "tls"
	ReasonUnreachable  Reason = "unreachable"
	ReasonNoPlatform   Reason = "no_platform"
	ReasonInvalid      Reason = "invalid_reference"
	ReasonRegistry     Reason = "registry_error"
)

// Error is a failed look-up: what failed, why, and what the user can do.
// Its message is meant to sit inside an admission warning that already names
// the container, the image and the other way out (giving the command in the
// pod spec or the fargate-otel.io/command annotation), so it repeats neither.
type Error struct {
	Image  string
	Reason Reason
	// What is a short account of the failure, e.g. "registry r.io refused access".
	What string
	Err  error
	// Hint says what to do about it.
	Hint string
}

func (e *Error) Error() string {
	what := e.What
	if what == "" {
		what = string(e.Reason)
	}
	msg := what
	if e.Err != nil && !selfExplanatory[e.Reason] {
		msg += ": " + shorten(e.Err.Error(), 160)
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// selfExplanatory reasons are said fully by What; the underlying error (URLs,
// status lines) would only make the warning longer.
var selfExplanatory = map[Reason]bool{
	ReasonUnauthorized: true, ReasonNotFound: true, ReasonTimeout: true, ReasonPlainHTTP: true, ReasonNoPlatform: true,
}

// errECRCredentials marks a failure to get ECR credentials from AWS.
var errECRCredentials = errors.New("no ECR credentials")

func classify(image string, ref name.Reference, err error, fetchTimeout time.Duration, platform string) *Error {
	reg := ref.Context().RegistryStr()
	e := &Error{Image: image, Err: err}
	var terr *transport.Error
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	var verr *tls.CertificateVerificationError
	var nerr net.Error
	var derr *net.DNSError
	var operr *net.OpError
	switch {
	case errors.Is(err, errECRCredentials):
		e.Reason, e.What = ReasonUnauthorized, "could not get ECR credentials for "+reg
		e.Hint = "let the injector's service account call ecr:GetAuthorizationToken (IRSA or EKS Pod Identity), or add an imagePullSecret for " + reg
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden ||
		hasCode(terr, transport.UnauthorizedErrorCode, transport.DeniedErrorCode)):
		e.Reason, e.What = ReasonUnauthorized, fmt.Sprintf("registry %s refused access (HTTP %d)", reg, terr.StatusCode)
		e.Hint = "give the pod an imagePullSecret for " + reg + " (in spec.imagePullSecrets or on its service account)"
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound ||
		hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)):
		e.Reason, e.What = ReasonNotFound, "not found in registry "+reg
		e.Hint = "check the image name and tag (the pod will not start either)"
	case strings.Contains(err.Error(), "no child with platform"):
		e.Reason, e.What = ReasonNoPlatform, "the image index has no "+platform+" manifest"
		e.Hint = "publish the image for " + platform + " (what Fargate runs)"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()):
		e.Reason, e.What = ReasonTimeout, fmt.Sprintf("registry %s did not answer within %s", reg, fetchTimeout)
		e.Hint = "check that the injector can reach " + reg
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") && !errors.As(err, &terr):
		// (With an HTTP status too, the registry was asked over plain HTTP
		// already, as go-containerregistry does for 127.0.0.1 and private
		// ranges, and answered: a registry error, not a missing setting.)
		e.Reason, e.What = ReasonPlainHTTP, "registry "+reg+" speaks plain HTTP"
		e.Hint = "add " + reg + " to the injector's insecure registries (--insecure-registries)"
	case errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) || errors.As(err, &verr):
		e.Reason, e.What = ReasonTLS, "TLS certificate of registry "+reg+" is not trusted"
		e.Hint = "mount the registry's CA into the injector (SSL_CERT_DIR)"
	case errors.As(err, &derr) || errors.As(err, &operr):
		e.Reason, e.What = ReasonUnreachable, "cannot reach registry "+reg
		e.Hint = "check DNS and network policies between the injector and " + reg
	default:
		e.Reason, e.What = ReasonRegistry, "look-up in registry "+reg+" failed"
	}
	var crerr *credentialsError
	if errors.As(err, &crerr) {
		e.What += " (reading the pod's pull secrets failed: " + shorten(crerr.credErr.Error(), 160) + ")"
	}
	return e
}

// localHint is the hint of a failed look-up made on a person's machine (the
// CLI's --resolve), which has no pull secrets of a cluster: only anonymous
// access and ECR through the machine's AWS credentials.
func localHint(e *Error) string {
	reg := e.Image
	if ref, err := name.ParseReference(e.Image); err == nil {
		reg = ref.Context().RegistryStr()
	}
	switch {
	case e.Reason == ReasonUnauthorized && strings.HasPrefix(e.What, "could not get ECR credentials"):
		return "give this machine AWS credentials that may call ecr:GetAuthorizationToken (AWS_PROFILE, aws sso login), or give the command with --command"
	case e.Reason == ReasonUnauthorized:
		return "--resolve reads only public images and ECR (with this machine's AWS credentials); give the command with --command"
	case e.Reason == ReasonTimeout:
		// The look-up budget and the fetch timeout are both --resolve-timeout.
		return "check that this machine can reach " + reg + ", or raise --resolve-timeout, or give the command with --command"
	case e.Reason == ReasonUnreachable:
		return "check that this machine can reach " + reg + ", or give the command with --command"
	case e.Reason == ReasonPlainHTTP:
		return "pass --insecure-registry " + reg + " to let this machine read it over plain HTTP"
	case e.Reason == ReasonTLS:
		return "add the registry's CA to this machine's trust store (or SSL_CERT_FILE)"
	case e.Hint == "":
		return "give the command with --command"
	}
	return e.Hint
}

// budgetError: the caller's time ran out while the look-up goes on.
func budgetError(image string, ref name.Reference, err error, budget time.Duration) *Error {
	return &Error{
		Image: image, Reason: ReasonTimeout, Err: err,
		What: fmt.Sprintf("registry %s did not answer within the look-up budget of %s", ref.Context().RegistryStr(), budget),
		Hint: "the look-up goes on in the background and the next pod with this image uses its result",
	}
}

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// headUnsupported: some registries answer HEAD on manifests badly; a GET
// gives both the digest and a readable error. Auth and not-found answers are
// final, GET would say the same.
func headUnsupported(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
		return false
	}
	return true
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
