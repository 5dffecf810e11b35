package certs

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/pki"
)

// KeyPair is a certificate and, for the ones this package signs with or
// serves, its private key (nil for a CA kept only to verify: the previous
// one).
type KeyPair = pki.KeyPair

// backdate is how far NotBefore goes into the past, so that a clock that is
// a little behind still accepts a new certificate.
const backdate = 5 * time.Minute

// NewCA creates a self-signed CA valid from now for validity.
func NewCA(commonName string, now time.Time, validity time.Duration) (*KeyPair, error) {
	return pki.NewCA(pki.Spec{
		CommonName:    commonName,
		Organizations: []string{"fargate-otel"},
		NotBefore:     now.Add(-backdate),
		NotAfter:      now.Add(validity),
	})
}

// NewServing creates a serving certificate for dnsNames signed by ca, valid
// from now for validity, but never past the CA's own expiry.
func NewServing(ca *KeyPair, dnsNames []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if len(dnsNames) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name")
	}
	return pki.Issue(ca, pki.Spec{
		CommonName:   dnsNames[0],
		DNSNames:     dnsNames,
		ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(validity),
	})
}

// verifies says whether leaf chains to ca for serving dnsName at time at.
func verifies(leaf, ca *KeyPair, dnsName string, at time.Time) bool {
	if leaf == nil || ca == nil {
		return false
	}
	_, err := leaf.Cert.Verify(x509.VerifyOptions{
		DNSName:     dnsName,
		Roots:       ca.Pool(),
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err == nil
}
