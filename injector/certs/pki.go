package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// KeyPair is a certificate and, for the ones this package signs with or
// serves, its private key.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer // nil for a CA kept only to verify (the previous one)
	CertPEM []byte
	KeyPEM  []byte
}

// backdate is how far NotBefore goes into the past, so that a clock that is
// a little behind still accepts a new certificate.
const backdate = 5 * time.Minute

// NewCA creates a self-signed CA valid from now for validity. ECDSA P-256:
// generating it takes microseconds (RSA takes ~100 ms), and every TLS client
// involved (the API server, Go) supports it.
func NewCA(commonName string, now time.Time, validity time.Duration) (*KeyPair, error) {
	return create(&x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"fargate-otel"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, nil)
}

// NewServing creates a serving certificate for dnsNames signed by ca, valid
// from now for validity, but never past the CA's own expiry.
func NewServing(ca *KeyPair, dnsNames []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if ca == nil || ca.Key == nil {
		return nil, errors.New("no CA key to sign with")
	}
	if len(dnsNames) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name")
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	return create(&x509.Certificate{
		Subject:               pkix.Name{CommonName: dnsNames[0]},
		DNSNames:              slices.Clone(dnsNames),
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}, ca)
}

func create(tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate a key: %w", err)
	}
	// 128 random bits: every certificate, CA or not, has its own serial.
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, err
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ParseKeyPair reads a PEM certificate and its PEM key (PKCS#8, EC or
// PKCS#1) and checks that they belong together.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("the private key cannot sign")
	}
	return &KeyPair{Cert: pair.Leaf, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// ParseCert reads one PEM certificate (a CA kept to verify only).
func ParseCert(certPEM []byte) (*KeyPair, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, CertPEM: certPEM}, nil
}

// Bundle concatenates the PEM certificates of cas, skipping nil ones.
func Bundle(cas ...*KeyPair) []byte {
	var b bytes.Buffer
	for _, ca := range cas {
		if ca != nil {
			b.Write(ca.CertPEM)
		}
	}
	return b.Bytes()
}

// verifies says whether leaf chains to ca for serving dnsName at time at.
func verifies(leaf, ca *KeyPair, dnsName string, at time.Time) bool {
	if leaf == nil || ca == nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err := leaf.Cert.Verify(x509.VerifyOptions{
		DNSName:     dnsName,
		Roots:       pool,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err == nil
}
