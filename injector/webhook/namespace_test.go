package webhook_test

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
)

// TestNamespaceFactsReachMutate: the webhook reads the pod's namespace
// (labels), its LimitRanges and whether the node proxy's CA is there, and
// Mutate gets exactly that.
func TestNamespaceFactsReachMutate(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: map[string]string{
		annotations.Inject: annotations.Enabled, annotations.KubeletStats: "direct"}}}
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "strict"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("200Mi")},
	}}}}
	other := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "tiny"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")},
	}}}}
	cache := fake.NewClientBuilder().WithObjects(ns, lr, other).Build()

	for _, tt := range []struct {
		name   string
		allow  bool // direct in allowedModes
		synced bool
		ca     bool // the CA ConfigMap exists
		facts  injector.NamespaceFacts
		mode   string
		warn   string
	}{
		{name: "direct allowed by the namespace label", allow: true, synced: true,
			facts: injector.NamespaceFacts{Labels: ns.Labels, LimitRanges: []corev1.LimitRange{*lr}, NodeProxyCA: injector.Missing}, mode: "direct",
			warn: "the namespace's LimitRanges lower the collector's limits to memory 200Mi"},
		{name: "direct not allowed, proxy without its CA", synced: true,
			facts: injector.NamespaceFacts{Labels: ns.Labels, LimitRanges: []corev1.LimitRange{*lr}, NodeProxyCA: injector.Missing}, mode: "off",
			warn: "kubelet stats are off for this pod: the ConfigMap fargate-otel-nodeproxy-ca"},
		{name: "direct not allowed, proxy with its CA", synced: true, ca: true,
			facts: injector.NamespaceFacts{Labels: ns.Labels, LimitRanges: []corev1.LimitRange{*lr}, NodeProxyCA: injector.Present}, mode: "proxy",
			warn: "asks for a mode this injector does not allow"},
		{name: "cache not filled yet", allow: true, ca: true,
			facts: injector.NamespaceFacts{NodeProxyCA: injector.Present}, mode: "proxy",
			warn: "the injector's cache of namespaces and LimitRanges is not filled yet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.allow {
				cfg.KubeletStats.AllowedModes = append(cfg.KubeletStats.AllowedModes, injector.KubeletStatsDirect)
			}
			builder := fake.NewClientBuilder()
			if tt.ca {
				builder = builder.WithObjects(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "fargate-otel-nodeproxy-ca"}})
			}
			h := newHarness(t, webhook.Options{Config: cfg, ConfigMaps: builder.Build(), Cache: cache, CacheSynced: func() bool { return tt.synced }})
			pod := fargatePod("web")
			raw := mustJSON(t, pod)
			resp := h.admit(admissionv1.Create, raw)
			want := cfg
			want.Namespace = tt.facts
			res := expectMutate(t, patched(t, raw, resp), pod, want, nil)
			if res.Status.KubeletStats != tt.mode {
				t.Errorf("mode %s, want %s", res.Status.KubeletStats, tt.mode)
			}
			if c := res.Pod.Spec.InitContainers[1]; tt.synced && c.Resources.Limits.Memory().Cmp(resource.MustParse("200Mi")) > 0 {
				t.Errorf("the collector's memory limit %v is not fitted to the LimitRange", c.Resources.Limits.Memory())
			}
			all := strings.Join(resp.Warnings, "\n")
			if tt.warn != "" && !strings.Contains(all, tt.warn) {
				t.Errorf("warnings %q lack %q", resp.Warnings, tt.warn)
			}
			if tt.warn == "" && all != "" {
				t.Errorf("unexpected warnings %q", resp.Warnings)
			}
		})
	}
}
