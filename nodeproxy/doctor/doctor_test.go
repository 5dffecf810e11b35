package doctor

import (
	"bytes"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

func TestStatsPlanOf(t *testing.T) {
	config := "receivers:\n  kubelet_stats:\n    auth_type: serviceAccount\n    endpoint: https://fargate-otel-nodeproxy.fargate-otel.svc/api/v1/nodes/${env:NODE_NAME}/proxy\n    ca_file: /x\n  otlp: {}\nexporters:\n  otlp_grpc:\n    endpoint: gateway:4317\n"
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{
			Name:         "otel-collector",
			Env:          []corev1.EnvVar{{Name: "FARGATE_OTEL_CONFIG", Value: config}},
			VolumeMounts: []corev1.VolumeMount{{Name: "tok", MountPath: serviceAccountDir}},
		}},
		Volumes: []corev1.Volume{{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "fargate-otel-nodeproxy", Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "fargate-otel-nodeproxy-ca"}}},
		}}}}},
	}}
	plan := statsPlanOf(pod)
	want := statsPlan{
		endpoint: "https://fargate-otel-nodeproxy.fargate-otel.svc/api/v1/nodes/${env:NODE_NAME}/proxy",
		audience: "fargate-otel-nodeproxy",
		caMap:    "fargate-otel-nodeproxy-ca",
	}
	if plan != want {
		t.Fatalf("plan %+v, want %+v", plan, want)
	}
	if (statsPlanOf(&corev1.Pod{})) != (statsPlan{}) {
		t.Error("a pod without collector has a plan")
	}
}

func TestParseBundle(t *testing.T) {
	ca, _ := pkitest.NewCA("x")
	if _, certs, err := parseBundle(ca.CertPEM); err != nil || len(certs) != 1 {
		t.Fatalf("parseBundle(CA) = %d certs, %v", len(certs), err)
	}
	for _, bad := range [][]byte{nil, []byte("nope"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		if _, _, err := parseBundle(bad); err == nil {
			t.Errorf("parseBundle(%q) accepted", bad)
		}
	}
}

func TestHandlesPodCreate(t *testing.T) {
	rule := func(groups, resources []string, ops ...admissionv1.OperationType) admissionv1.MutatingWebhook {
		return admissionv1.MutatingWebhook{Rules: []admissionv1.RuleWithOperations{{Operations: ops, Rule: admissionv1.Rule{APIGroups: groups, Resources: resources}}}}
	}
	for _, tc := range []struct {
		h    admissionv1.MutatingWebhook
		want bool
	}{
		{rule([]string{""}, []string{"pods"}, admissionv1.Create), true},
		{rule([]string{"*"}, []string{"*"}, admissionv1.OperationAll), true},
		{rule([]string{""}, []string{"pods"}, admissionv1.Update), false},
		{rule([]string{"apps"}, []string{"deployments"}, admissionv1.Create), false},
	} {
		if got := handlesPodCreate(tc.h); got != tc.want {
			t.Errorf("handlesPodCreate(%+v) = %v", tc.h.Rules, got)
		}
	}
}

func TestPrintSaysWhatToDo(t *testing.T) {
	r := &Report{Namespace: "shop", Pod: "app"}
	r.add(CheckWebhook, OK, "registered", "")
	r.add(CheckSelected, Fail, "namespace shop is not opted in", "kubectl label namespace shop fargate-otel.io/inject=enabled\nthen re-create its pods")
	r.add(CheckStatsRequest, Skip, "pass --pod", "ignored fix")
	var b bytes.Buffer
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"namespace shop, pod app", "ok    webhook registered", "FAIL  webhook selects", "fix: kubectl label namespace shop", "     then re-create", "1 check(s) failed."} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ignored fix") {
		t.Error("a skipped check printed a fix")
	}
	if r.Failed() != 1 {
		t.Errorf("Failed() = %d", r.Failed())
	}
}
