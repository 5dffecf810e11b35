package certfile

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

func TestReloadsRenewedCertificate(t *testing.T) {
	ca, err := pkitest.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, _ := ca.Issue(pkitest.CertSpec{CommonName: "proxy", Hosts: []string{"127.0.0.1"}, Server: true, Validity: time.Hour})
	if err := first.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	r, err := New(certFile, keyFile, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func() { mu.Lock(); now = now.Add(time.Minute); mu.Unlock() }

	serialServed := func() string {
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	if got := serialServed(); got != first.Cert.SerialNumber.String() {
		t.Fatalf("served %s, want the first certificate", got)
	}

	second, _ := ca.Issue(pkitest.CertSpec{CommonName: "proxy", Hosts: []string{"127.0.0.1"}, Server: true, Validity: 2 * time.Hour})
	if err := second.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if got := serialServed(); got != first.Cert.SerialNumber.String() {
		t.Fatal("files were re-read before the check interval")
	}
	advance()
	if got := serialServed(); got != second.Cert.SerialNumber.String() {
		t.Fatalf("served %s after renewal, want the second certificate", got)
	}
	if !r.NotAfter().Equal(second.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want %v", r.NotAfter(), second.Cert.NotAfter)
	}

	// A broken write keeps the good certificate and reports why.
	if err := os.WriteFile(keyFile, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	advance()
	if got := serialServed(); got != second.Cert.SerialNumber.String() {
		t.Fatal("a broken key file replaced the served certificate")
	}
	if r.Err() == nil {
		t.Fatal("Err() is nil after a failed reload")
	}
	if err := second.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	advance()
	serialServed()
	if r.Err() != nil {
		t.Fatalf("Err() = %v after the files were fixed", r.Err())
	}
}

func TestNewFailsClearly(t *testing.T) {
	if _, err := New("/nonexistent/tls.crt", "/nonexistent/tls.key", 0); err == nil {
		t.Fatal("missing files accepted")
	}
}
