// Package pki makes and reads the X.509 material of fargate-otel: ECDSA P-256
// keys, a self-signed CA, the certificates it signs, PEM in and out, pools and
// files. The injector's certificate rotation (injector/certs) uses it for real
// keys; the test CAs (internal/pki/pkitest) wrap it with defaults.
//
// Every key is ECDSA P-256: generating one takes microseconds (RSA takes
// ~100 ms) and every TLS client involved (the API server, the kubelet, Go)
// supports it. Keys are written as PKCS#8.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// KeyPair is a certificate and, for the ones that sign or serve, its private
// key, both parsed and as PEM.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer // nil for a certificate kept only to verify
	CertPEM []byte
	KeyPEM  []byte
}

// Spec says what a certificate holds. NotAfter must be after NotBefore.
type Spec struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPAddresses   []net.IP
	// ExtKeyUsages says what a leaf certificate is for (server, client);
	// a leaf needs at least one. A CA may have none.
	ExtKeyUsages []x509.ExtKeyUsage
	NotBefore    time.Time
	NotAfter     time.Time
}

// NewCA creates a self-signed CA with a fresh key. It signs leaf certificates
// only (no intermediate CAs).
func NewCA(spec Spec) (*KeyPair, error) {
	tmpl := spec.template()
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true
	return create(spec, tmpl, nil)
}

// Issue signs a leaf certificate with a fresh key by ca. It is valid from
// spec.NotBefore to spec.NotAfter, but never past the CA's own expiry: a
// certificate that outlives its issuer only fails later and less clearly.
func Issue(ca *KeyPair, spec Spec) (*KeyPair, error) {
	if ca == nil || ca.Key == nil {
		return nil, errors.New("no CA key to sign with")
	}
	if len(spec.ExtKeyUsages) == 0 {
		return nil, fmt.Errorf("certificate %q: say what it is for (ExtKeyUsages: server, client or both)", spec.CommonName)
	}
	if spec.NotAfter.After(ca.Cert.NotAfter) {
		spec.NotAfter = ca.Cert.NotAfter
	}
	tmpl := spec.template()
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	return create(spec, tmpl, ca)
}

func (s Spec) template() *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: s.CommonName, Organization: slices.Clone(s.Organizations)},
		DNSNames:              slices.Clone(s.DNSNames),
		IPAddresses:           slices.Clone(s.IPAddresses),
		ExtKeyUsage:           slices.Clone(s.ExtKeyUsages),
		NotBefore:             s.NotBefore,
		NotAfter:              s.NotAfter,
		BasicConstraintsValid: true,
	}
}

// create signs tmpl with parent, or with its own new key when parent is nil.
func create(spec Spec, tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	if !spec.NotAfter.After(spec.NotBefore) {
		return nil, fmt.Errorf("certificate %q: NotAfter (%s) must be after NotBefore (%s)", spec.CommonName, spec.NotAfter, spec.NotBefore)
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = NewSerial(); err != nil {
		return nil, err
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: EncodeCert(der), KeyPEM: keyPEM}, nil
}

// NewKey generates an ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate a key: %w", err)
	}
	return key, nil
}

// NewSerial is a random 128-bit serial number: every certificate, CA or not,
// has its own.
func NewSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n, nil
}

// SplitHosts sorts hosts into DNS names and IP addresses, for Spec.
func SplitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

// Pool is a certificate pool that holds only this certificate.
func (kp *KeyPair) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(kp.Cert)
	return p
}

// TLSCertificate is the pair as a tls.Certificate, to serve.
func (kp *KeyPair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
}

// Bundle concatenates the PEM certificates of pairs, skipping nil ones: what
// a client that trusts all of them is given.
func Bundle(pairs ...*KeyPair) []byte {
	var b bytes.Buffer
	for _, kp := range pairs {
		if kp != nil {
			b.Write(kp.CertPEM)
		}
	}
	return b.Bytes()
}
