package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// certLoader serves the webhook's certificate from files and reloads it when
// they change (controller-runtime's certwatcher). Unlike the webhook
// server's own watcher it waits for the files instead of failing the start:
// a cert-manager Certificate or a Secret may appear after the pod, and
// until it does /readyz says why the server is not ready.
type certLoader struct {
	certPath, keyPath string
	interval          time.Duration
	log               logr.Logger

	mu      sync.RWMutex
	watcher *certwatcher.CertWatcher
	lastErr error
}

func newCertLoader(certPath, keyPath string, interval time.Duration, log logr.Logger) *certLoader {
	return &certLoader{certPath: certPath, keyPath: keyPath, interval: interval, log: log.WithName("certs")}
}

// Start implements manager.Runnable: it waits for the files, then watches them.
func (l *certLoader) Start(ctx context.Context) error {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	logged := false
	for {
		w, err := l.load()
		if err == nil {
			l.mu.Lock()
			l.watcher, l.lastErr = w, nil
			l.mu.Unlock()
			l.log.Info("certificate loaded", "cert", l.certPath)
			return w.Start(ctx)
		}
		l.mu.Lock()
		l.lastErr = err
		l.mu.Unlock()
		if !logged {
			l.log.Info("waiting for the webhook certificate", "error", err.Error())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (l *certLoader) load() (*certwatcher.CertWatcher, error) {
	for _, p := range []string{l.certPath, l.keyPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("no webhook certificate yet: %w", err)
		}
	}
	w, err := certwatcher.New(l.certPath, l.keyPath)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate %s / key %s: %w", l.certPath, l.keyPath, err)
	}
	return w.WithWatchInterval(l.interval), nil
}

// NeedLeaderElection: every replica serves the webhook.
func (l *certLoader) NeedLeaderElection() bool { return false }

// GetCertificate is the TLS server's certificate callback.
func (l *certLoader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.RLock()
	w := l.watcher
	l.mu.RUnlock()
	if w == nil {
		return nil, errors.New("the webhook certificate is not loaded yet")
	}
	return w.GetCertificate(hello)
}

// Ready says whether a certificate is loaded, and if not why.
func (l *certLoader) Ready() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.watcher != nil {
		return nil
	}
	if l.lastErr != nil {
		return l.lastErr
	}
	return errors.New("the webhook certificate is not loaded yet")
}
