package pkitest

import (
	"crypto/x509"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCAIssuesVerifiableCertificates(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(CertSpec{CommonName: "webhook", Hosts: []string{"webhook.ns.svc", "10.200.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"webhook.ns.svc", "10.200.0.1"} {
		if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.ns.svc"}); err == nil {
		t.Error("a name not in the certificate verified")
	}
	// A clock a little behind still accepts a new certificate.
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "webhook.ns.svc", CurrentTime: time.Now().Add(-30 * time.Minute)}); err != nil {
		t.Errorf("half an hour ago: %v", err)
	}
	client, err := ca.Issue(CertSpec{CommonName: "system:node:n", Organizations: []string{"system:nodes"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if !slices.Equal(client.Cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("organizations %v", client.Cert.Subject.Organization)
	}
	if _, err := ca.Issue(CertSpec{CommonName: "x"}); err == nil {
		t.Error("a certificate for neither server nor client was issued")
	}
	short, err := ca.Issue(CertSpec{CommonName: "s", Server: true, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(short.Cert.NotAfter); life > time.Hour || life < 59*time.Minute {
		t.Errorf("a one-hour certificate expires in %s", life)
	}
	cert, err := ca.ServingCert("a.b.svc")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.Leaf.DNSNames, []string{"a.b.svc"}) {
		t.Errorf("serving certificate for %v", cert.Leaf.DNSNames)
	}
}

func TestCAFilesRoundTrip(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := loaded.Issue(CertSpec{CommonName: "s", Hosts: []string{"s"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "s"}); err != nil {
		t.Errorf("a certificate from the loaded CA does not verify against the original: %v", err)
	}
	if err := kp.WriteFiles(filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")); err == nil {
		t.Error("a leaf certificate loaded as a CA")
	}
}
