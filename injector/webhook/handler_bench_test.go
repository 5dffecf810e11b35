package webhook_test

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/injector/webhook/webhooktest"
)

// BenchmarkHandle is the handler's own cost per pod (decode, Mutate, patch,
// response encoding), without HTTP; BenchmarkMutate the pure part of it.
// The round trip over HTTPS is bench/injector.
func BenchmarkHandle(b *testing.B) {
	h := webhook.NewHandler(webhook.Options{Config: testConfig()})
	raw, err := json.Marshal(webhooktest.DeploymentPod("registry.example.com/app:1", true))
	if err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: "apps"}}
	req.Resource.Resource = "pods"
	req.Object.Raw = raw
	for b.Loop() {
		resp := h.Handle(context.Background(), req)
		if err := resp.Complete(req); err != nil {
			b.Fatal(err)
		}
		if len(resp.Patch) == 0 {
			b.Fatal("no patch")
		}
	}
}

func BenchmarkMutate(b *testing.B) {
	cfg := testConfig()
	pod := webhooktest.DeploymentPod("registry.example.com/app:1", true)
	for b.Loop() {
		if !injector.Mutate(pod, cfg, nil).Injected {
			b.Fatal("not injected")
		}
	}
}
