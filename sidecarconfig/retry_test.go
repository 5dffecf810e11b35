package sidecarconfig

import (
	"reflect"
	"testing"
	"time"
)

func TestPaceRetries(t *testing.T) {
	paced := func(max string) map[string]any {
		return map[string]any{"initial_interval": "1s", "max_interval": max}
	}
	tests := []struct {
		name  string
		id    string
		drain time.Duration
		in    map[string]any
		want  any // retry_on_failure afterwards; nil: absent
	}{
		{name: "otlp over gRPC, default drain", id: "otlp_grpc/gateway", drain: DefaultDrainTimeout,
			in: map[string]any{"endpoint": "gw:4317"}, want: paced("5s")},
		{name: "otlp over HTTP, a short drain: twice within it", id: "otlp_http/vendor", drain: 3 * time.Second,
			in: map[string]any{"endpoint": "https://v"}, want: paced("1.5s")},
		{name: "never below a second", id: "otlp", drain: time.Second,
			in: map[string]any{}, want: paced("1s")},
		{name: "no drain", id: "otlphttp", drain: 0,
			in: map[string]any{}, want: paced("5s")},
		{name: "enabled alone is kept", id: "otlp_grpc", drain: DefaultDrainTimeout,
			in:   map[string]any{"retry_on_failure": map[string]any{"enabled": true}},
			want: map[string]any{"enabled": true, "initial_interval": "1s", "max_interval": "5s"}},
		{name: "the user's own pacing is kept", id: "otlp_grpc/gateway", drain: DefaultDrainTimeout,
			in:   map[string]any{"retry_on_failure": map[string]any{"max_elapsed_time": "1m"}},
			want: map[string]any{"max_elapsed_time": "1m"}},
		{name: "not an OTLP exporter", id: "debug", drain: DefaultDrainTimeout,
			in: map[string]any{"verbosity": "basic"}, want: nil},
		{name: "file exporter", id: "file/out", drain: DefaultDrainTimeout,
			in: map[string]any{"path": "/tmp/x"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reflect.ValueOf(tt.in["retry_on_failure"])
			c := Config{DrainTimeout: tt.drain}
			out := c.paceRetries(tt.id, tt.in)
			got, ok := out["retry_on_failure"]
			if tt.want == nil {
				if ok {
					t.Fatalf("retry_on_failure %v, want none", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("retry_on_failure %v, want %v", got, tt.want)
			}
			if after := reflect.ValueOf(tt.in["retry_on_failure"]); before.IsValid() != after.IsValid() {
				t.Errorf("the exporter's own config was changed")
			}
		})
	}
}
