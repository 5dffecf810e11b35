package cluster

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"slices"
	"testing"
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
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "webhook.ns.svc"}); err != nil {
		t.Errorf("DNS name: %v", err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "10.200.0.1"}); err != nil {
		t.Errorf("IP: %v", err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.ns.svc"}); err == nil {
		t.Error("a name not in the certificate verified")
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
	if _, err := ca.ServingCert("a.b.svc"); err != nil {
		t.Error(err)
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
}

func TestFirstServiceIP(t *testing.T) {
	for cidr, want := range map[string]string{"10.0.0.0/24": "10.0.0.1", "10.96.0.0/12": "10.96.0.1"} {
		got, err := firstServiceIP(cidr)
		if err != nil || got != want {
			t.Errorf("firstServiceIP(%s) = %s, %v; want %s", cidr, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.0", "fd00::/108"} {
		if _, err := firstServiceIP(bad); err == nil {
			t.Errorf("firstServiceIP(%s): no error", bad)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:              "/tmp/a",
		`/tmp/with\040space`:  "/tmp/with space",
		`/tmp/tab\011and\134`: "/tmp/tab\tand\\",
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequirePrivateNetNS(t *testing.T) {
	// TestMain moved this test binary into a namespace of its own.
	if err := RequirePrivateNetNS(); err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(NodeIP); ip == nil || ip.IsLoopback() {
		t.Fatalf("NodeIP %s must be a non-loopback address: the API server refuses to proxy to loopback", NodeIP)
	}
}
