package main

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func nopLogger() *zap.Logger { return zap.NewNop() }

func TestAdvice(t *testing.T) {
	for _, tt := range []struct {
		err  string
		want []string
	}{
		{`cannot start pipelines: failed to start "otlp" receiver: listen tcp 127.0.0.1:4317: bind: address already in use`,
			[]string{"already listens on 127.0.0.1:4317", "declare it in the app container's ports", "once it is free"}},
		{`cannot start pipelines: failed to start "otlp_grpc/gw" exporter: failed to load TLS config: failed to load CA CertPool File: failed to load cert /var/run/fargate-otel/nodeproxy/ca.crt: open /var/run/fargate-otel/nodeproxy/ca.crt: no such file or directory`,
			[]string{"The file /var/run/fargate-otel/nodeproxy/ca.crt is missing", "starts once it is there", "fargate-otel.io/exporters"}},
		{"failed to get config: cannot unmarshal the configuration: decoding failed due to the following error(s):\n\n'exporters' error reading configuration for \"otlp_grpc/gw\": unsupported compression type \"brotli\"",
			[]string{"The configuration is invalid", "exporters ConfigMap", "fargate-otel-collector validate"}},
		{`failed to start extensions: open /var/lib/fargate-otel/receiver_filelog_: permission denied`,
			[]string{"uid 65532", ".fargate-otel-state"}},
		{`something nobody foresaw`, []string{"names the component that failed"}},
	} {
		got := advice(errors.New(tt.err))
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("advice for %q:\n%s\nlacks %q", tt.err, got, w)
			}
		}
	}
}
