package controllers

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

func injectedPod(ns, name, sa, mode string, phase corev1.PodPhase) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{ServiceAccountName: sa},
		Status:     corev1.PodStatus{Phase: phase},
	}
	if mode != "" {
		p.Annotations = map[string]string{StatusAnnotation: `{"version":1,"collector":"native-sidecar","kubeletStats":"` + mode + `"}`}
	}
	return p
}

func TestDirectSubjects(t *testing.T) {
	pods := []corev1.Pod{
		injectedPod("shop", "cart-1", "cart", "direct", corev1.PodRunning),
		injectedPod("shop", "cart-2", "cart", "direct", corev1.PodPending), // same SA once
		injectedPod("shop", "web", "", "direct", corev1.PodRunning),        // default SA
		injectedPod("bank", "api", "api", "direct", corev1.PodRunning),
		injectedPod("shop", "proxied", "proxied", "proxy", corev1.PodRunning), // mode proxy: no grant
		injectedPod("shop", "plain", "plain", "", corev1.PodRunning),          // not injected
		injectedPod("shop", "done", "batch", "direct", corev1.PodSucceeded),   // finished
		injectedPod("shop", "failed", "batch2", "direct", corev1.PodFailed),   // finished
		injectedPod("other", "x", "x", "direct", corev1.PodRunning),           // namespace not opted in
	}
	pods = append(pods, corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bad", Annotations: map[string]string{StatusAnnotation: "{not json"}}})
	got := DirectSubjects(pods, map[string]bool{"shop": true, "bank": true})
	want := []rbacv1.Subject{
		{Kind: "ServiceAccount", Namespace: "bank", Name: "api"},
		{Kind: "ServiceAccount", Namespace: "shop", Name: "cart"},
		{Kind: "ServiceAccount", Namespace: "shop", Name: "default"},
	}
	if len(got) != len(want) {
		t.Fatalf("subjects %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("subjects %v, want %v", got, want)
		}
	}
	if DirectSubjects(nil, nil) != nil {
		t.Error("no pods should give no subjects")
	}
}

func TestValidCABundle(t *testing.T) {
	ca, _ := pkitest.NewCA("a")
	ca2, _ := pkitest.NewCA("b")
	for name, tc := range map[string]struct {
		in []byte
		ok bool
	}{
		"one":        {ca.CertPEM, true},
		"two":        {append(append([]byte{}, ca.CertPEM...), ca2.CertPEM...), true},
		"empty":      {nil, false},
		"spaces":     {[]byte("\n \n"), false},
		"garbage":    {[]byte("hello"), false},
		"with a key": {append(append([]byte{}, ca.CertPEM...), ca.KeyPEM...), false},
		"trailing":   {append(append([]byte{}, ca.CertPEM...), "junk"...), false},
	} {
		if err := validCABundle(tc.in); (err == nil) != tc.ok {
			t.Errorf("%s: validCABundle = %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func TestCAFileChanged(t *testing.T) {
	ca, _ := pkitest.NewCA("a")
	ca2, _ := pkitest.NewCA("b")
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &caFile{path: path}
	if _, err := f.read(); err != nil {
		t.Fatal(err)
	}
	if f.changed() {
		t.Error("changed without a change")
	}
	_ = os.WriteFile(path, []byte("half-writ"), 0o644)
	if f.changed() {
		t.Error("an invalid file counts as a change")
	}
	_ = os.WriteFile(path, ca2.CertPEM, 0o644)
	if !f.changed() || f.changed() {
		t.Error("a new CA is one change")
	}
}

func TestStripPodKeepsOnlyWhatIsRead(t *testing.T) {
	p := injectedPod("ns", "p", "sa", "direct", corev1.PodRunning)
	p.Annotations["other"] = "x"
	p.Labels = map[string]string{"a": "b"}
	p.Spec.Containers = []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "PASSWORD", Value: "hunter2"}}}}
	out, _ := stripPod(&p)
	s := out.(*corev1.Pod)
	if len(s.Spec.Containers) != 0 || s.Labels != nil || len(s.Annotations) != 1 || s.Spec.ServiceAccountName != "sa" || injectedMode(s.Annotations[StatusAnnotation]) != "direct" {
		t.Fatalf("stripped pod %+v", s)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Mode: "proxy"}
	if err := c.defaults(); err != nil || c.CAFile != DefaultCAFile {
		t.Errorf("mode proxy: CA file %q, %v; want the default", c.CAFile, err)
	}
	c = Config{Mode: "sideways"}
	if err := c.defaults(); err == nil {
		t.Error("unknown mode accepted")
	}
	c = Config{Mode: "direct"}
	if err := c.defaults(); err != nil || c.DirectBinding != "fargate-otel-kubelet-stats-direct" || c.NamespaceLabel != "fargate-otel.io/inject" {
		t.Errorf("defaults: %+v %v", c, err)
	}
}
