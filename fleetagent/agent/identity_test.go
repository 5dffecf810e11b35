package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
)

func TestConfigFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name      string
		env       map[string]string
		ok        bool
		err       string
		heartbeat time.Duration
	}{
		{name: "no endpoint: no agent", env: map[string]string{}},
		{name: "wss", env: map[string]string{EndpointEnv: "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp"}, ok: true, heartbeat: DefaultHeartbeat},
		{name: "no TLS is refused", env: map[string]string{EndpointEnv: "ws://fargate-otel-fleet:4320/v1/opamp"}, ok: true, err: "must be a wss:// URL"},
		{name: "https is not OpAMP over WebSocket", env: map[string]string{EndpointEnv: "https://fleet:4320/v1/opamp"}, ok: true, err: "wss://"},
		{name: "a heartbeat", env: map[string]string{EndpointEnv: "wss://f/v1/opamp", HeartbeatEnv: "5s"}, ok: true, heartbeat: 5 * time.Second},
		{name: "a heartbeat too fast", env: map[string]string{EndpointEnv: "wss://f/v1/opamp", HeartbeatEnv: "10ms"}, ok: true, err: "from 1s to 10m0s"},
		{name: "a heartbeat that is not a duration", env: map[string]string{EndpointEnv: "wss://f/v1/opamp", HeartbeatEnv: "often"}, ok: true, err: "e.g. 30s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EndpointEnv, HeartbeatEnv, TokenFileEnv, CAFileEnv} {
				t.Setenv(k, tt.env[k])
			}
			cfg, ok, err := ConfigFromEnv()
			if ok != tt.ok {
				t.Fatalf("ok %v", ok)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok && (cfg.Heartbeat != tt.heartbeat || cfg.TokenFile != DefaultTokenFile || cfg.CAFile != DefaultCAFile) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	id := Identity{PodName: "web-1", PodUID: "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e", Namespace: "shop", Node: "fargate-ip-1",
		Version: "0.1.0", InjectorVersion: "1.2.3", ExportersSource: "cluster", BootstrapHash: "aa"}
	uid, err := id.InstanceUID()
	if err != nil {
		t.Fatal(err)
	}
	if uid[0] != 0x0f || uid[15] != 0x6e {
		t.Fatalf("uid %x", uid)
	}
	d := id.Description("bb")
	get := func(kvs []*protobufs.KeyValue, k string) (string, bool) {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.GetValue().GetStringValue(), true
			}
		}
		return "", false
	}
	for k, want := range map[string]string{"service.name": ServiceName, "service.instance.id": id.PodUID, "k8s.pod.uid": id.PodUID, "k8s.pod.name": "web-1", "k8s.namespace.name": "shop"} {
		if got, _ := get(d.IdentifyingAttributes, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]string{"k8s.node.name": "fargate-ip-1", "fargate-otel.bootstrap.config_hash": "aa", "fargate-otel.config_hash": "bb", "fargate-otel.injector.version": "1.2.3"} {
		if got, _ := get(d.NonIdentifyingAttributes, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := get(d.NonIdentifyingAttributes, "k8s.cluster.name"); ok {
		t.Error("k8s.cluster.name without a cluster name")
	}
	id.Cluster = "prod"
	if got, _ := get(id.Description("").NonIdentifyingAttributes, "k8s.cluster.name"); got != "prod" {
		t.Errorf("k8s.cluster.name = %q", got)
	}

	id.PodUID = "not-a-uid"
	if _, err := id.InstanceUID(); err == nil || !strings.Contains(err.Error(), "Downward API") {
		t.Fatalf("a bad uid: %v", err)
	}
}
