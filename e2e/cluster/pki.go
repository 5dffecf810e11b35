package cluster

import (
	"path/filepath"

	"github.com/fargate-otel/fargate-otel/internal/pki"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

// CA is the one certificate authority of a test cluster. It signs the API
// server's serving certificate, every component's client certificate and the
// kubelet's serving certificate, and the API server trusts it for client
// certificates (--client-ca-file) and kubelet serving certificates
// (--kubelet-certificate-authority). Tests use it to sign the serving
// certificates of webhooks and proxies, and put CertPEM in caBundles.
type CA = pkitest.CA

// KeyPair is a certificate signed by a CA and its private key.
type KeyPair = pki.KeyPair

// CertSpec says what a certificate is for (see pkitest.CertSpec).
type CertSpec = pkitest.CertSpec

// writeServiceAccountKey writes dir/sa.key and dir/sa.pub: the key pair the
// API server signs service account tokens with
// (--service-account-signing-key-file) and verifies them with
// (--service-account-key-file).
func writeServiceAccountKey(dir string) error {
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	priv, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	pub, err := pki.EncodePublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(dir, "sa.pub"), pub, 0o644); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dir, "sa.key"), priv, 0o600)
}
