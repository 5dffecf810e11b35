package certs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/fargate-otel/fargate-otel/internal/pki"
)

// Keys of the Secrets.
const (
	// In the CA Secret (read by the injector only).
	KeyCACert       = "ca.crt"
	KeyCAKey        = "ca.key"
	KeyNextCert     = "next.crt"
	KeyNextKey      = "next.key"
	KeyPreviousCert = "previous.crt"
	// In a serving Secret: the pair, and the bundle its clients trust (the
	// keys cert-manager writes).
	KeyTLSCert  = "tls.crt"
	KeyTLSKey   = "tls.key"
	KeyCABundle = "ca.crt"
)

// Leaf is a serving certificate the rotator keeps in a Secret.
type Leaf struct {
	// Secret is its name in the rotator's namespace.
	Secret string
	// DNSNames the certificate is valid for; the first is its common name.
	DNSNames []string
}

// ServiceDNSNames are the names a client may use for a Service.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace,
		service,
	}
}

// Config of the rotator.
type Config struct {
	// Namespace holds the Secrets (the release namespace).
	Namespace string
	// CASecret holds the CAs and their keys.
	CASecret string
	// Leaves are the serving certificates.
	Leaves []Leaf
	// WebhookConfigs are MutatingWebhookConfigurations whose every webhook
	// gets the CA bundle as caBundle.
	WebhookConfigs []string
	Policy         Policy
}

// Validate says what is missing.
func (c Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("no namespace for the certificate Secrets"))
	}
	if c.CASecret == "" {
		errs = append(errs, errors.New("no CA Secret"))
	}
	for _, l := range c.Leaves {
		if l.Secret == "" || len(l.DNSNames) == 0 {
			errs = append(errs, fmt.Errorf("serving certificate %+v needs a Secret and DNS names", l))
		}
	}
	return errors.Join(append(errs, c.Policy.Validate())...)
}

// Rotator keeps the CA, the serving certificates and the webhooks' caBundle
// current. It only reads and updates Secrets and webhook configurations that
// exist (the chart creates the Secrets, empty), so that it needs no right to
// create Secrets, and RBAC can name every object it touches.
type Rotator struct {
	Client kubernetes.Interface
	Config Config
	Log    logr.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Changed is called after a reconcile that wrote something.
	Changed func()
}

// Reconcile brings everything in line once. The order keeps every client
// working: the CA Secret first, then the webhooks' caBundle (so that the API
// server trusts a new CA before any replica serves a certificate it signed),
// then the serving Secrets.
func (r *Rotator) Reconcile(ctx context.Context) error {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	cfg := r.Config
	secrets := r.Client.CoreV1().Secrets(cfg.Namespace)

	caSecret, err := r.getSecret(ctx, cfg.CASecret)
	if err != nil {
		return err
	}
	state := r.readCAState(caSecret)
	planned, changed, err := PlanCA(state, now, cfg.Policy)
	if err != nil {
		return err
	}
	wrote := false
	if changed {
		writeCAState(caSecret, planned)
		if _, err := secrets.Update(ctx, caSecret, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Secret %s/%s: %w", cfg.Namespace, cfg.CASecret, err)
		}
		wrote = true
		r.Log.Info("CA rotated", "secret", cfg.CASecret, "current", describe(planned.Current), "next", describe(planned.Next), "previous", describe(planned.Previous))
	}
	bundle := planned.Bundle()

	var errs []error
	for _, name := range cfg.WebhookConfigs {
		patched, err := r.ensureCABundle(ctx, name, bundle)
		if err != nil {
			errs = append(errs, err)
		}
		wrote = wrote || patched
	}
	for _, leaf := range cfg.Leaves {
		updated, err := r.ensureLeaf(ctx, leaf, planned, bundle, now)
		if err != nil {
			errs = append(errs, err)
		}
		wrote = wrote || updated
	}
	if wrote && r.Changed != nil {
		r.Changed()
	}
	return errors.Join(errs...)
}

func (r *Rotator) getSecret(ctx context.Context, name string) (*corev1.Secret, error) {
	s, err := r.Client.CoreV1().Secrets(r.Config.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("the Secret %s/%s does not exist: the Helm chart creates it empty for the injector to fill (helm upgrade puts it back)", r.Config.Namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", r.Config.Namespace, name, err)
	}
	return s, nil
}

// readCAState parses what it can; anything unreadable is replaced.
func (r *Rotator) readCAState(s *corev1.Secret) CAState {
	var st CAState
	d := s.Data
	parse := func(what string, certKey, keyKey string) *KeyPair {
		if len(d[certKey]) == 0 {
			return nil
		}
		var kp *KeyPair
		var err error
		if keyKey == "" {
			kp, err = pki.ParseCert(d[certKey])
		} else {
			kp, err = pki.ParseKeyPair(d[certKey], d[keyKey])
		}
		if err != nil {
			r.Log.Info("replacing an unreadable CA", "secret", s.Name, "which", what, "error", err.Error())
			return nil
		}
		return kp
	}
	st.Current = parse("current", KeyCACert, KeyCAKey)
	st.Next = parse("next", KeyNextCert, KeyNextKey)
	st.Previous = parse("previous", KeyPreviousCert, "")
	return st
}

func writeCAState(s *corev1.Secret, st CAState) {
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for _, k := range []string{KeyCACert, KeyCAKey, KeyNextCert, KeyNextKey, KeyPreviousCert} {
		delete(s.Data, k)
	}
	s.Data[KeyCACert], s.Data[KeyCAKey] = st.Current.CertPEM, st.Current.KeyPEM
	if st.Next != nil {
		s.Data[KeyNextCert], s.Data[KeyNextKey] = st.Next.CertPEM, st.Next.KeyPEM
	}
	if st.Previous != nil {
		s.Data[KeyPreviousCert] = st.Previous.CertPEM
	}
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// ensureCABundle sets caBundle in every webhook of the configuration. A JSON
// patch (with a test of each webhook's name, so that a concurrent edit
// fails it) changes that field only, whatever else a newer API server keeps
// in the object.
func (r *Rotator) ensureCABundle(ctx context.Context, name string, bundle []byte) (bool, error) {
	api := r.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	mwc, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, fmt.Errorf("the MutatingWebhookConfiguration %s does not exist: it is part of the Helm chart", name)
	}
	if err != nil {
		return false, fmt.Errorf("read MutatingWebhookConfiguration %s: %w", name, err)
	}
	var ops []jsonPatchOp
	for i, h := range mwc.Webhooks {
		if bytes.Equal(h.ClientConfig.CABundle, bundle) {
			continue
		}
		ops = append(ops,
			jsonPatchOp{Op: "test", Path: fmt.Sprintf("/webhooks/%d/name", i), Value: h.Name},
			jsonPatchOp{Op: "add", Path: fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), Value: base64.StdEncoding.EncodeToString(bundle)})
	}
	if len(ops) == 0 {
		return false, nil
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return false, err
	}
	if _, err := api.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		return false, fmt.Errorf("set the caBundle of MutatingWebhookConfiguration %s: %w", name, err)
	}
	r.Log.Info("caBundle set", "webhookConfiguration", name, "webhooks", len(ops)/2)
	return true, nil
}

func (r *Rotator) ensureLeaf(ctx context.Context, leaf Leaf, ca CAState, bundle []byte, now time.Time) (bool, error) {
	s, err := r.getSecret(ctx, leaf.Secret)
	if err != nil {
		return false, err
	}
	var current *KeyPair
	if len(s.Data[KeyTLSCert]) > 0 {
		if current, err = pki.ParseKeyPair(s.Data[KeyTLSCert], s.Data[KeyTLSKey]); err != nil {
			r.Log.Info("replacing an unreadable serving certificate", "secret", leaf.Secret, "error", err.Error())
			current = nil
		}
	}
	kp, issued, err := PlanLeaf(current, ca, leaf.DNSNames, now, r.Config.Policy)
	if err != nil {
		return false, fmt.Errorf("serving certificate of Secret %s: %w", leaf.Secret, err)
	}
	if !issued && bytes.Equal(s.Data[KeyCABundle], bundle) {
		return false, nil
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[KeyTLSCert], s.Data[KeyTLSKey], s.Data[KeyCABundle] = kp.CertPEM, kp.KeyPEM, bundle
	if _, err := r.Client.CoreV1().Secrets(r.Config.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("update Secret %s/%s: %w", r.Config.Namespace, leaf.Secret, err)
	}
	if issued {
		r.Log.Info("serving certificate issued", "secret", leaf.Secret, "certificate", describe(kp))
	} else {
		r.Log.Info("CA bundle updated", "secret", leaf.Secret)
	}
	return true, nil
}

func describe(kp *KeyPair) string {
	if kp == nil {
		return "none"
	}
	return fmt.Sprintf("%s (serial %x, until %s)", kp.Cert.Subject.CommonName, kp.Cert.SerialNumber, kp.Cert.NotAfter.UTC().Format(time.RFC3339))
}
