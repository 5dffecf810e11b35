package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newCA(t *testing.T) *KeyPair {
	t.Helper()
	ca, err := NewCA(Spec{CommonName: "test CA", Organizations: []string{"fargate-otel"}, NotBefore: t0, NotAfter: t0.Add(100 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverSpec(names ...string) Spec {
	dns, ips := SplitHosts(names)
	return Spec{CommonName: names[0], DNSNames: dns, IPAddresses: ips,
		ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: t0, NotAfter: t0.Add(10 * time.Hour)}
}

func TestNewCA(t *testing.T) {
	ca := newCA(t)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("IsCA %v, constraints %v, MaxPathLenZero %v: want a CA that signs leaves only", c.IsCA, c.BasicConstraintsValid, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; c.KeyUsage != want {
		t.Errorf("key usage %b, want %b", c.KeyUsage, want)
	}
	if !c.NotBefore.Equal(t0) || !c.NotAfter.Equal(t0.Add(100*time.Hour)) {
		t.Errorf("valid %s to %s, want the spec's times", c.NotBefore, c.NotAfter)
	}
	if c.Subject.CommonName != "test CA" || !slices.Equal(c.Subject.Organization, []string{"fargate-otel"}) {
		t.Errorf("subject %s", c.Subject)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	key, ok := ca.Key.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", ca.Key)
	}
	if !strings.HasPrefix(string(ca.KeyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key PEM is not PKCS#8: %.30q", ca.KeyPEM)
	}
}

func TestSerialsAreRandom128Bit(t *testing.T) {
	ca := newCA(t)
	seen := map[string]bool{ca.Cert.SerialNumber.String(): true}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for range 20 {
		leaf, err := Issue(ca, serverSpec("a.svc"))
		if err != nil {
			t.Fatal(err)
		}
		s := leaf.Cert.SerialNumber
		if s.Sign() < 0 || s.Cmp(limit) >= 0 {
			t.Fatalf("serial %s outside [0, 2^128)", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s.String()] = true
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t)
	leaf, err := Issue(ca, serverSpec("web.ns.svc", "10.0.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	c := leaf.Cert
	if c.IsCA || !c.BasicConstraintsValid || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA %v, constraints %v, key usage %b: want a leaf for signatures only", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if !slices.Equal(c.DNSNames, []string{"web.ns.svc"}) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) {
		t.Errorf("names %v %v", c.DNSNames, c.IPAddresses)
	}
	at := t0.Add(time.Hour)
	for _, host := range []string{"web.ns.svc", "10.0.0.7"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, CurrentTime: at}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.ns.svc", CurrentTime: at}); err == nil {
		t.Error("a name not in the certificate verified")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a server certificate verified for client authentication")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "web.ns.svc", CurrentTime: t0.Add(11 * time.Hour)}); err == nil {
		t.Error("verified after NotAfter")
	}

	client := Spec{CommonName: "system:node:n", Organizations: []string{"system:nodes"}, ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	kp, err := Issue(ca, client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if !slices.Equal(kp.Cert.Subject.Organization, client.Organizations) {
		t.Errorf("organizations %v", kp.Cert.Subject.Organization)
	}
}

func TestIssueNeverOutlivesTheCA(t *testing.T) {
	ca := newCA(t)
	spec := serverSpec("a.svc")
	spec.NotAfter = t0.Add(1000 * time.Hour)
	leaf, err := Issue(ca, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %s, want the CA's %s", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestIssueRefuses(t *testing.T) {
	ca := newCA(t)
	noUsage := serverSpec("a.svc")
	noUsage.ExtKeyUsages = nil
	backwards := serverSpec("a.svc")
	backwards.NotAfter = backwards.NotBefore
	for name, tc := range map[string]struct {
		ca   *KeyPair
		spec Spec
		want string
	}{
		"no CA":             {nil, serverSpec("a.svc"), "no CA key"},
		"a CA without key":  {&KeyPair{Cert: ca.Cert, CertPEM: ca.CertPEM}, serverSpec("a.svc"), "no CA key"},
		"no usage":          {ca, noUsage, "say what it is for"},
		"NotAfter too soon": {ca, backwards, "must be after NotBefore"},
	} {
		if _, err := Issue(tc.ca, tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.want)
		}
	}
	if _, err := NewCA(Spec{CommonName: "zero times"}); err == nil {
		t.Error("a CA without validity was created")
	}
}

func TestParse(t *testing.T) {
	ca := newCA(t)
	leaf, err := Issue(ca, serverSpec("a.svc"))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ParseKeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Cert.Equal(leaf.Cert) || kp.Key == nil {
		t.Error("parsed pair differs from the issued one")
	}
	if _, err := ParseKeyPair(leaf.CertPEM, ca.KeyPEM); err == nil {
		t.Error("a certificate with another's key was accepted")
	}
	cert, err := ParseCert(ca.CertPEM)
	if err != nil || !cert.Cert.Equal(ca.Cert) || cert.Key != nil {
		t.Errorf("ParseCert: %v", err)
	}
	if _, err := ParseCert(ca.KeyPEM); err == nil {
		t.Error("ParseCert accepted a key")
	}
	if _, err := ParseCert([]byte("junk")); err == nil {
		t.Error("ParseCert accepted junk")
	}
	if _, err := leaf.TLSCertificate(); err != nil {
		t.Error(err)
	}
}

func TestEncodePublicKey(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := EncodePublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("%.30q", pubPEM)
	}
}

func TestFilesRoundTrip(t *testing.T) {
	ca := newCA(t)
	dir := filepath.Join(t.TempDir(), "new", "pki")
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := ca.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (err %v), want %v", file, fi.Mode().Perm(), err, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in %s, want the two written", len(entries), dir)
	}
	loaded, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := Issue(loaded, serverSpec("s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "s", CurrentTime: t0.Add(time.Hour)}); err != nil {
		t.Errorf("a certificate from the loaded CA does not verify against the original: %v", err)
	}
	if _, err := LoadKeyPair(certFile, filepath.Join(dir, "missing.key")); err == nil {
		t.Error("a missing key file loaded")
	}
}

func TestBundle(t *testing.T) {
	a, b := newCA(t), newCA(t)
	got := Bundle(a, nil, b)
	if want := string(a.CertPEM) + string(b.CertPEM); string(got) != want {
		t.Errorf("bundle %q, want both certificates in order", got)
	}
	if len(Bundle()) != 0 || len(Bundle(nil)) != 0 {
		t.Error("an empty bundle has content")
	}
}

func TestSplitHosts(t *testing.T) {
	dns, ips := SplitHosts([]string{"a.svc", "127.0.0.1", "localhost", "::1"})
	if !slices.Equal(dns, []string{"a.svc", "localhost"}) {
		t.Errorf("DNS names %v", dns)
	}
	if len(ips) != 2 || !ips[0].Equal(net.IPv4(127, 0, 0, 1)) || !ips[1].Equal(net.IPv6loopback) {
		t.Errorf("IPs %v", ips)
	}
}
