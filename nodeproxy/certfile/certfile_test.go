package certfile

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/testpki"
)

func TestReloadsRenewedCertificate(t *testing.T) {
	ca, err := testpki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first, _ := ca.Issue("proxy", []string{"127.0.0.1"}, time.Hour)
	certFile, keyFile, err := first.WriteFiles(dir)
	if err != nil {
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

	second, _ := ca.Issue("proxy", []string{"127.0.0.1"}, 2*time.Hour)
	if _, _, err := second.WriteFiles(dir); err != nil {
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
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	advance()
	if got := serialServed(); got != second.Cert.SerialNumber.String() {
		t.Fatal("a broken key file replaced the served certificate")
	}
	if r.Err() == nil {
		t.Fatal("Err() is nil after a failed reload")
	}
	if _, _, err := second.WriteFiles(dir); err != nil {
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
