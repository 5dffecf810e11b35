package gatewaytest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTheChartsConfigsValidate: the gateway binary accepts the config the
// chart renders for each variant of gateway.* and destinations.*
// (`fargate-otel-gateway validate`, which builds every component). AWS
// credentials are static here: the sigv4auth extensions fetch them while
// the config is validated.
func TestTheChartsConfigsValidate(t *testing.T) {
	bin, err := BinaryPath()
	if err != nil {
		t.Fatal(err)
	}
	otlp := map[string]any{"enabled": true, "endpoint": "otlp.vendor.example:4317"}
	aws := map[string]any{"enabled": true, "region": "eu-west-1", "logs": map[string]any{"logGroup": "/eks/prod"}, "metrics": map[string]any{"enabled": true, "workspaceId": "ws-1"}}
	for name, values := range map[string]map[string]any{
		"otlp grpc": {"destinations": map[string]any{"otlp": otlp}},
		"otlp http with headers": {"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "protocol": "http", "endpoint": "https://otlp.vendor.example",
			"headersFrom": map[string]any{"secretName": "vendor", "headers": map[string]any{"x-api-key": "api-key"}}}}},
		"aws":                 {"destinations": map[string]any{"aws": aws}},
		"aws and otlp":        {"destinations": map[string]any{"aws": aws, "otlp": otlp}},
		"aws logs only":       {"destinations": map[string]any{"aws": map[string]any{"enabled": true, "region": "us-east-1", "logs": map[string]any{"logGroup": "/x"}, "traces": map[string]any{"enabled": false}}}},
		"no tail sampling":    {"gateway": map[string]any{"tailSampling": map[string]any{"enabled": false}}, "destinations": map[string]any{"otlp": otlp}},
		"no span metrics":     {"gateway": map[string]any{"spanMetrics": map[string]any{"enabled": false}}, "destinations": map[string]any{"otlp": otlp}},
		"persistent queue":    {"gateway": map[string]any{"sendingQueue": "file"}, "destinations": map[string]any{"otlp": otlp}},
		"processors of yours": {"gateway": map[string]any{"processors": yourProcessors}, "destinations": map[string]any{"otlp": otlp}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg, err := RenderConfig(ctx, values)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, bin, "validate", "--config=env:GATEWAY_CONFIG")
			cmd.Env = append(cleanAWSEnv(t.TempDir()), "POD_IP=127.0.0.1", "POD_NAME=fargate-otel-gateway-0", "GATEWAY_CONFIG="+string(cfg),
				"FARGATE_OTEL_OTLP_HEADER_0=secret", "AWS_ACCESS_KEY_ID=AKIAVALIDATE", "AWS_SECRET_ACCESS_KEY=validate")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the gateway refuses the chart's config: %v\n%s\nconfig:\n%s", err, strings.TrimSpace(string(out)), cfg)
			}
			if strings.Contains(string(out), "deprecated") {
				t.Errorf("the chart's config uses a deprecated name:\n%s", out)
			}
		})
	}
}

// yourProcessors are the kind a user adds: attributes, transform, filter,
// resource.
var yourProcessors = []map[string]any{
	{"id": "attributes/env", "config": map[string]any{"actions": []map[string]any{{"key": "deployment.environment", "value": "prod", "action": "upsert"}}}},
	{"id": "transform/redact", "config": map[string]any{"log_statements": []map[string]any{{"context": "log", "statements": []string{`replace_pattern(body, "password=\\S+", "password=***")`}}}}, "signals": []string{"logs"}},
	{"id": "filter/health", "config": map[string]any{"traces": map[string]any{"span": []string{`attributes["http.route"] == "/healthz"`}}}, "signals": []string{"traces"}},
	{"id": "resource/cluster", "config": map[string]any{"attributes": []map[string]any{{"key": "k8s.cluster.name", "value": "prod", "action": "upsert"}}}},
}
