// Package certfile serves a TLS certificate from files and picks up a new one
// when the files change (a renewed Secret mounted as a volume is swapped in
// through a symlink), without a restart and without dropping connections.
package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Reloader holds the current certificate. It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp
	lastCheck time.Time
	lastErr   error
}

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// New loads the key pair, and checks the files again at most once per
// interval (default 10s) when a handshake asks for the certificate.
func New(certFile, keyFile string, interval time.Duration) (*Reloader, error) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval, now: time.Now}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Sub(r.lastCheck) >= r.interval {
		r.lastCheck = r.now()
		if r.changed() {
			// A half-written pair fails to load: keep serving the old one
			// and try again at the next check.
			r.lastErr = r.reloadLocked()
		}
	}
	return r.cert, nil
}

// Err is the error of the last failed reload, nil when the files on disk are
// the ones being served.
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// NotAfter is when the served certificate expires.
func (r *Reloader) NotAfter() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert.Leaf.NotAfter
}

func (r *Reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

func (r *Reloader) reloadLocked() error {
	s0, err0 := stamp(r.certFile)
	s1, err1 := stamp(r.keyFile)
	if err0 != nil || err1 != nil {
		return fmt.Errorf("read TLS key pair: %w", firstErr(err0, err1))
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse certificate %s: %w", r.certFile, err)
	}
	cert.Leaf = leaf
	r.cert = &cert
	r.stamp = [2]fileStamp{s0, s1}
	return nil
}

func (r *Reloader) changed() bool {
	s0, err0 := stamp(r.certFile)
	s1, err1 := stamp(r.keyFile)
	return err0 != nil || err1 != nil || s0 != r.stamp[0] || s1 != r.stamp[1]
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path) // follows the ..data symlink of a Secret volume
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
