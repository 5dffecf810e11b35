package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serve is a TLS server for 127.0.0.1 with a certificate from ca.
func (ca testCA) serve(t *testing.T) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.leaf(t)}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	return lis.Addr().String()
}

// leaf is a serving certificate for 127.0.0.1 from ca.
func (ca testCA) leaf(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fleet"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func dial(addr, caFile string) error {
	cfg := tlsConfig(caFile)
	cfg.ServerName = "127.0.0.1"
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

func TestTheServerMustChainToTheFleetCA(t *testing.T) {
	ca := newTestCA(t)
	addr := ca.serve(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")

	// The CA ConfigMap is not mounted yet: no connection.
	if err := dial(addr, caFile); err == nil || !strings.Contains(err.Error(), "the fleet CA "+caFile) {
		t.Fatalf("without the CA file: %v", err)
	}
	// Another CA: no connection.
	if err := os.WriteFile(caFile, newTestCA(t).pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr, caFile); err == nil || !strings.Contains(err.Error(), "does not chain to the fleet CA") {
		t.Fatalf("with another CA: %v", err)
	}
	// The right CA shows up (a rotation rewrites the file): read again.
	if err := os.WriteFile(caFile, append(ca.pem, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr, caFile); err != nil {
		t.Fatalf("with the fleet CA: %v", err)
	}
	// Not a PEM file.
	if err := os.WriteFile(caFile, []byte("nothing here"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr, caFile); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("with an empty CA file: %v", err)
	}
}
