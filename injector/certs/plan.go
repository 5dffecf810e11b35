package certs

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/pki"
)

// Policy says how long certificates live. A certificate is renewed when less
// than a third of its validity is left: four months before expiry for the
// default one-year serving certificates.
type Policy struct {
	// CAValidity is the lifetime of a CA (default 10 years).
	CAValidity time.Duration
	// CertValidity is the lifetime of a serving certificate (default 1 year).
	CertValidity time.Duration
}

// Default validities.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// Validate refuses a policy under which certificates would be renewed all
// the time.
func (p Policy) Validate() error {
	var errs []error
	if p.CertValidity <= 0 || p.CAValidity <= 0 {
		errs = append(errs, fmt.Errorf("certificate validities must be positive (CA %s, serving %s)", p.CAValidity, p.CertValidity))
	} else if p.CAValidity < 2*p.CertValidity {
		errs = append(errs, fmt.Errorf("the CA validity (%s) must be at least twice the serving certificates' (%s), which it signs", p.CAValidity, p.CertValidity))
	}
	return errors.Join(errs...)
}

// CAState is the CA side of the rotation. Current signs. Next is made when
// Current has less than half of its life left and is handed out in every
// bundle from then on, so that a client that reads its bundle once (a
// collector reading the proxy's CA at start) already trusts it when it takes
// over. Previous, the CA before Current, stays in bundles until it expires,
// because serving certificates it signed stay in use until their own renewal.
type CAState struct {
	Current  *KeyPair
	Next     *KeyPair
	Previous *KeyPair // certificate only
}

// Bundle is what clients trust: Previous, Current, Next (those present).
func (s CAState) Bundle() []byte { return pki.Bundle(s.Previous, s.Current, s.Next) }

// PlanCA returns the CA state to keep at now, and whether it differs from s.
func PlanCA(s CAState, now time.Time, p Policy) (CAState, bool, error) {
	out := s
	newCA := func() (*KeyPair, error) {
		return NewCA("fargate-otel CA "+now.UTC().Format(time.RFC3339), now, p.CAValidity)
	}
	if !usableCA(out.Previous, now) {
		out.Previous = nil
	}
	if !usableCA(out.Next, now) || out.Next.Key == nil {
		out.Next = nil
	}
	if !usableCA(out.Current, now) || out.Current.Key == nil || out.Current.Cert.NotAfter.Sub(now) < p.CAValidity/3 {
		// Time to hand over, to Next if it was published. The outgoing CA,
		// while still valid, keeps verifying what it signed.
		if usableCA(out.Current, now) {
			out.Previous = certOnly(out.Current)
		}
		out.Current, out.Next = out.Next, nil
		if out.Current == nil {
			ca, err := newCA()
			if err != nil {
				return s, false, err
			}
			out.Current = ca
		}
	}
	if out.Next == nil && out.Current.Cert.NotAfter.Sub(now) < p.CAValidity/2 {
		ca, err := newCA()
		if err != nil {
			return s, false, err
		}
		out.Next = ca
	}
	changed := !sameCert(out.Current, s.Current) || !sameCert(out.Next, s.Next) || !sameCert(out.Previous, s.Previous)
	return out, changed, nil
}

// PlanLeaf returns the serving certificate to keep for dnsNames at now, and
// whether it is a new one. The current one is kept while it is valid for
// exactly these names, was signed by Current or Previous, and has more than
// a third of its validity left; a new one is signed by Current.
func PlanLeaf(leaf *KeyPair, ca CAState, dnsNames []string, now time.Time, p Policy) (*KeyPair, bool, error) {
	if leaf != nil && leaf.Key != nil && sameNames(leaf.Cert.DNSNames, dnsNames) &&
		leaf.Cert.NotAfter.Sub(now) >= p.CertValidity/3 &&
		(verifies(leaf, ca.Current, dnsNames[0], now) || verifies(leaf, ca.Previous, dnsNames[0], now)) {
		return leaf, false, nil
	}
	fresh, err := NewServing(ca.Current, dnsNames, now, p.CertValidity)
	if err != nil {
		return leaf, false, err
	}
	return fresh, true, nil
}

func usableCA(ca *KeyPair, now time.Time) bool {
	return ca != nil && ca.Cert.IsCA && now.Before(ca.Cert.NotAfter)
}

func certOnly(kp *KeyPair) *KeyPair {
	return &KeyPair{Cert: kp.Cert, CertPEM: kp.CertPEM}
}

func sameCert(a, b *KeyPair) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Cert.Equal(b.Cert)
}

func sameNames(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
