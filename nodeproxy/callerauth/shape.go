package callerauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrMalformed is wrapped (with ErrUnauthenticated) when a token is refused
// by its shape alone, without asking the API server: it cannot be a
// projected service account token of the expected audience.
var ErrMalformed = errors.New("malformed token")

// MaxTokenBytes bounds the tokens looked at. A projected service account
// token is about 1 KiB (1.5 KiB with the node claims); anything this large is
// refused before it is hashed or decoded.
const MaxTokenBytes = 8 << 10

// Claims are what a token says about itself, read without verifying its
// signature. They decide only whether the token is worth a TokenReview (and
// how long an accepted review may be cached); who is calling comes from the
// review.
type Claims struct {
	Expiry    time.Time
	Namespace string
	PodName   string
	PodUID    string
}

// asymmetric are the JWS algorithms the API server signs service account
// tokens with (RSA or ECDSA keys; EdDSA for completeness). "none" and the
// HMAC algorithms are never issued by it.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// CheckShape reports whether token is shaped like a projected service
// account token for audience that has not expired at now: a JWT of three
// unpadded base64url segments, a JSON header with an asymmetric alg, and a
// JSON payload whose aud includes audience, whose exp is in the future, and
// whose kubernetes.io claims name a namespace and a pod (name and uid).
//
// It is the pure part of the flood defence: a token that fails it can never
// pass a TokenReview for audience, so it costs no API call. Errors wrap
// ErrUnauthenticated and ErrMalformed, say what was expected, and never
// contain the token.
func CheckShape(token, audience string, now time.Time) (Claims, error) {
	fail := func(format string, args ...any) (Claims, error) {
		return Claims{}, fmt.Errorf("%w: %w: %s (expected a projected service account token: a JWT with audience %q, bound to a pod)",
			ErrUnauthenticated, ErrMalformed, fmt.Sprintf(format, args...), audience)
	}
	if len(token) > MaxTokenBytes {
		return fail("token of %d bytes, more than %d", len(token), MaxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fail("%d dot-separated segments, not 3", len(parts))
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || len(b) == 0 {
			return fail("segment %d is not unpadded base64url", i+1)
		}
		raw[i] = b
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw[0], &header) != nil {
		return fail("the header is not a JSON object")
	}
	if !slices.Contains(asymmetric, header.Alg) {
		return fail("header alg %q is not an asymmetric signature algorithm", clip(header.Alg, 16))
	}
	var payload struct {
		Aud audiences `json:"aud"`
		Exp *int64    `json:"exp"`
		K8s *struct {
			Namespace string `json:"namespace"`
			Pod       *struct {
				Name string `json:"name"`
				UID  string `json:"uid"`
			} `json:"pod"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(raw[1], &payload); err != nil {
		return fail("the payload is not a JSON object of JWT claims")
	}
	if !slices.Contains(payload.Aud, audience) {
		return fail("the aud claim does not include %q", audience)
	}
	if payload.Exp == nil {
		return fail("no exp claim")
	}
	exp := time.Unix(*payload.Exp, 0)
	if !exp.After(now) {
		return fail("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if payload.K8s == nil || payload.K8s.Namespace == "" {
		return fail("no kubernetes.io namespace claim: not a service account token")
	}
	if payload.K8s.Pod == nil || payload.K8s.Pod.Name == "" || payload.K8s.Pod.UID == "" {
		return fail("not bound to a pod (no kubernetes.io pod claim): use a projected serviceAccountToken volume, not a Secret-based token")
	}
	return Claims{Expiry: exp, Namespace: payload.K8s.Namespace, PodName: payload.K8s.Pod.Name, PodUID: payload.K8s.Pod.UID}, nil
}

// audiences is the aud claim: a string or an array of strings (RFC 7519).
type audiences []string

func (a *audiences) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
