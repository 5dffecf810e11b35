package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

// TestPublishBranches: what Publish does for each state of the ConfigMap
// (the proof against a real API server is in cmd/fargate-otel-injector and
// nodeproxy/clustertest).
func TestPublishBranches(t *testing.T) {
	ca, _ := pkitest.NewCA("current")
	caPath := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caPath, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "fargate-otel-nodeproxy-ca"
	cm := func(labels map[string]string, data string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, Labels: labels}, Data: map[string]string{CAKey: data}}
	}
	alreadyExists := interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
		return apierrors.NewAlreadyExists(schema.GroupResource{Resource: "configmaps"}, name)
	}}
	forbidden := interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, name, nil)
	}}
	for _, tt := range []struct {
		name     string
		existing *corev1.ConfigMap
		funcs    *interceptor.Funcs
		dryRun   bool
		caPath   string
		action   Action
		stored   string // the CA stored afterwards; "" for no ConfigMap
		err      string
	}{
		{name: "missing: created", action: Created, stored: string(ca.CertPEM)},
		{name: "missing, dry run: nothing stored", dryRun: true, action: Created},
		{name: "ours, current", existing: cm(managedLabels(), string(ca.CertPEM)), action: Unchanged, stored: string(ca.CertPEM)},
		{name: "ours, an old CA: updated", existing: cm(managedLabels(), "old"), action: Updated, stored: string(ca.CertPEM)},
		{name: "ours, an old CA, dry run: kept", existing: cm(managedLabels(), "old"), dryRun: true, action: Updated, stored: "old"},
		{name: "a user's: left alone", existing: cm(nil, "theirs"), action: NotManaged, stored: "theirs"},
		{name: "created meanwhile by someone else", funcs: &alreadyExists, action: Unchanged},
		{name: "create forbidden", funcs: &forbidden, err: "the injector needs create on configmaps"},
		{name: "CA file missing", caPath: filepath.Join(t.TempDir(), "none"), err: "mount key ca.crt of the proxy's TLS Secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := fake.NewClientBuilder()
			if tt.existing != nil {
				b = b.WithObjects(tt.existing)
			}
			if tt.funcs != nil {
				b = b.WithInterceptorFuncs(*tt.funcs)
			}
			api := b.Build()
			path := caPath
			if tt.caPath != "" {
				path = tt.caPath
			}
			got, action, err := NewCAPublisher(api, path, name).Publish(context.Background(), "apps", tt.dryRun)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if action != tt.action {
				t.Errorf("action %s, want %s", action, tt.action)
			}
			if got != nil && action != NotManaged && got.Data[CAKey] != string(ca.CertPEM) {
				t.Errorf("returned ConfigMap holds %q", got.Data[CAKey])
			}
			var stored corev1.ConfigMap
			err = api.Get(context.Background(), client.ObjectKey{Namespace: "apps", Name: name}, &stored)
			switch {
			case tt.stored == "" && !apierrors.IsNotFound(err):
				t.Errorf("a ConfigMap is stored (%v)", err)
			case tt.stored != "" && err != nil:
				t.Fatal(err)
			case tt.stored != "" && stored.Data[CAKey] != tt.stored:
				t.Errorf("stored CA %q, want %q", stored.Data[CAKey], tt.stored)
			}
		})
	}
}
