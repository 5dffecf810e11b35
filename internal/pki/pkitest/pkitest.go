// Package pkitest is a certificate authority for tests and benchmarks: the
// test cluster's CA (e2e/cluster), the node proxy's tests, servers on
// loopback. It fills in what a test does not care about (validity, a clock
// an hour behind) on top of internal/pki. Never use it for real keys.
package pkitest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/pki"
)

// DefaultValidity is how long a certificate lives when the test does not
// say: long enough for a persistent test cluster.
const DefaultValidity = 5 * 365 * 24 * time.Hour

// backdate is how far NotBefore goes into the past, so that a process whose
// clock is a little behind still accepts a new certificate.
const backdate = time.Hour

// CA is a certificate authority with its key. Put CertPEM in caBundles and
// Pool() in clients' RootCAs.
type CA struct {
	pki.KeyPair
}

// CertSpec says what a certificate is for. Hosts are DNS names or IP
// addresses, put into the subject alternative names.
type CertSpec struct {
	CommonName    string
	Organizations []string
	Hosts         []string
	Server        bool          // ExtKeyUsageServerAuth
	Client        bool          // ExtKeyUsageClientAuth
	Validity      time.Duration // DefaultValidity when zero
}

// NewCA creates a self-signed CA valid for DefaultValidity.
func NewCA(commonName string) (*CA, error) {
	now := time.Now()
	kp, err := pki.NewCA(pki.Spec{CommonName: commonName, NotBefore: now.Add(-backdate), NotAfter: now.Add(DefaultValidity)})
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", commonName, err)
	}
	return &CA{KeyPair: *kp}, nil
}

// LoadCA reads a CA written by WriteFiles (e.g. by a process that attaches
// to a running test cluster).
func LoadCA(certFile, keyFile string) (*CA, error) {
	kp, err := pki.LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !kp.Cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certFile)
	}
	return &CA{KeyPair: *kp}, nil
}

// Issue signs a new certificate with a fresh key.
func (ca *CA) Issue(spec CertSpec) (*pki.KeyPair, error) {
	var usages []x509.ExtKeyUsage
	if spec.Server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	validity := spec.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	dnsNames, ips := pki.SplitHosts(spec.Hosts)
	now := time.Now()
	return pki.Issue(&ca.KeyPair, pki.Spec{
		CommonName:    spec.CommonName,
		Organizations: spec.Organizations,
		DNSNames:      dnsNames,
		IPAddresses:   ips,
		ExtKeyUsages:  usages,
		NotBefore:     now.Add(-backdate),
		NotAfter:      now.Add(validity),
	})
}

// ServingCert is a server certificate for the given DNS names and IPs, ready
// for a tls.Config (a webhook, a proxy, a fake kubelet).
func (ca *CA) ServingCert(hosts ...string) (tls.Certificate, error) {
	name := "server"
	if len(hosts) > 0 {
		name = hosts[0]
	}
	kp, err := ca.Issue(CertSpec{CommonName: name, Hosts: hosts, Server: true})
	if err != nil {
		return tls.Certificate{}, err
	}
	return kp.TLSCertificate()
}
