package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The server's certificate must chain to the fleet CA, read from its file
// (a ConfigMap the injector's CA publishing puts in the pod's namespace,
// mounted as an optional volume): it may appear after the sidecar started
// and changes when the chart rotates the CA, so it is read again whenever
// the file changes, at the handshake. A missing or unreadable CA file fails
// the handshake: there is never a connection that was not verified.

// tlsConfig verifies the server against the CA in caFile.
func tlsConfig(caFile string) *tls.Config {
	v := &caVerifier{file: caFile}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard verification runs in VerifyConnection, against the
		// CA file as it is at each handshake.
		InsecureSkipVerify: true,
		VerifyConnection:   v.verify,
	}
}

type caVerifier struct {
	file string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	pool    *x509.CertPool
}

func (v *caVerifier) verify(cs tls.ConnectionState) error {
	pool, err := v.load()
	if err != nil {
		return err
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the fleet server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("the fleet server's certificate does not chain to the fleet CA in %s: %w", v.file, err)
	}
	return nil
}

func (v *caVerifier) load() (*x509.CertPool, error) {
	st, err := os.Stat(v.file)
	if err != nil {
		return nil, fmt.Errorf("the fleet CA %s: %w (it is the fleet CA ConfigMap, published in the pod's namespace; it shows up within a minute or two)", v.file, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pool != nil && st.ModTime().Equal(v.modTime) && st.Size() == v.size {
		return v.pool, nil
	}
	pem, err := os.ReadFile(v.file)
	if err != nil {
		return nil, fmt.Errorf("the fleet CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the fleet CA %s holds no PEM certificate", v.file)
	}
	v.pool, v.modTime, v.size = pool, st.ModTime(), st.Size()
	return pool, nil
}
