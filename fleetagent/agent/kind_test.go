package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	opampserver "github.com/open-telemetry/opamp-go/server"
	servertypes "github.com/open-telemetry/opamp-go/server/types"

	"github.com/fargate-otel/fargate-otel/fleetagent/figures"
	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func attr(kvs []*protobufs.KeyValue, k string) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.GetValue().GetStringValue(), true
		}
	}
	return "", false
}

func TestDescriptionSaysTheKind(t *testing.T) {
	for _, tt := range []struct {
		name     string
		id       Identity
		kind     string
		service  string
		injector bool
	}{
		{"a sidecar", IdentityFromEnv("", "0.1.0", "aa"), KindSidecar, ServiceName, true},
		{"no kind is a sidecar", Identity{PodUID: "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e"}, KindSidecar, ServiceName, true},
		{"a gateway", GatewayIdentityFromEnv("prod", "0.1.0"), KindGateway, GatewayServiceName, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.id.Description("bb")
			if got, _ := attr(d.IdentifyingAttributes, KindAttribute); got != tt.kind {
				t.Errorf("%s = %q, want %q", KindAttribute, got, tt.kind)
			}
			if got, _ := attr(d.IdentifyingAttributes, "service.name"); got != tt.service {
				t.Errorf("service.name = %q, want %q", got, tt.service)
			}
			if _, ok := attr(d.NonIdentifyingAttributes, "fargate-otel.injector.version"); ok != tt.injector {
				t.Errorf("fargate-otel.injector.version present %v, want %v", ok, tt.injector)
			}
			if got, _ := attr(d.NonIdentifyingAttributes, "fargate-otel.config_hash"); got != "bb" {
				t.Errorf("fargate-otel.config_hash = %q", got)
			}
		})
	}
	t.Setenv("POD_NAME", "fargate-otel-gateway-7d9f-x2")
	t.Setenv("POD_UID", "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e")
	t.Setenv("POD_NAMESPACE", "fargate-otel")
	t.Setenv("NODE_NAME", "fargate-ip-2")
	id := GatewayIdentityFromEnv("", "0.1.0")
	if id.PodName != "fargate-otel-gateway-7d9f-x2" || id.Namespace != "fargate-otel" || id.Node != "fargate-ip-2" || id.Kind != KindGateway {
		t.Fatalf("identity %+v", id)
	}
	if _, err := id.InstanceUID(); err != nil {
		t.Fatal(err)
	}
}

// fakeServer is an OpAMP server over TLS that records what agents send
// and answers the first full description with a remote config.
type fakeServer struct {
	url    string
	caFile string
	rc     *protobufs.AgentRemoteConfig

	mu   sync.Mutex
	msgs []*protobufs.AgentToServer
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ca := newTestCA(t)
	body := []byte(`{"exporters":[]}`)
	sum := sha256.Sum256(body)
	fs := &fakeServer{caFile: filepath.Join(t.TempDir(), "ca.crt"), rc: &protobufs.AgentRemoteConfig{
		ConfigHash: sum[:],
		Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			sidecarconfig.OverridesConfigName: {Body: body, ContentType: sidecarconfig.OverridesContentType},
		}},
	}}
	if err := os.WriteFile(fs.caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := opampserver.New(nil)
	sent := false
	h, _, err := srv.Attach(opampserver.Settings{Callbacks: servertypes.Callbacks{
		OnConnecting: func(*http.Request) servertypes.ConnectionResponse {
			return servertypes.ConnectionResponse{Accept: true, ConnectionCallbacks: servertypes.ConnectionCallbacks{
				OnMessage: func(_ context.Context, _ servertypes.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
					fs.mu.Lock()
					defer fs.mu.Unlock()
					fs.msgs = append(fs.msgs, m)
					resp := &protobufs.ServerToAgent{InstanceUid: m.GetInstanceUid()}
					if !sent && m.GetAgentDescription() != nil {
						sent = true
						resp.RemoteConfig = fs.rc
					}
					return resp
				},
			}}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(h))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t)}, MinVersion: tls.VersionTLS12}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	fs.url = "wss://" + strings.TrimPrefix(hs.URL, "https://") + "/v1/opamp"
	return fs
}

func (fs *fakeServer) messages() []*protobufs.AgentToServer {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]*protobufs.AgentToServer(nil), fs.msgs...)
}

// until polls cond until it holds or the deadline passes.
func until(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startAgent(t *testing.T, fs *fakeServer, id Identity, apply func(context.Context, []byte, func()) error) *Agent {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{
		Config:    Config{Endpoint: fs.url, TokenFile: tok, CAFile: fs.caFile, Heartbeat: MinHeartbeat},
		Identity:  id,
		Apply:     apply,
		Effective: func() Effective { return Effective{YAML: []byte("receivers: {}\n"), Hash: "cc"} },
		Health:    func() fleetstatus.Snapshot { return fleetstatus.Snapshot{Running: true} },
		Figures:   func(context.Context) figures.Report { return figures.New(nil).Report(context.Background(), time.Now()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Stop(ctx)
	})
	return a
}

const remoteCaps = protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig | protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig

func TestAGatewayAgentDoesNotAcceptRemoteConfig(t *testing.T) {
	fs := newFakeServer(t)
	id := Identity{Kind: KindGateway, PodName: "gw-0", PodUID: "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e", Namespace: "fargate-otel"}
	startAgent(t, fs, id, nil)
	var first *protobufs.AgentToServer
	until(t, 10*time.Second, "the agent describes itself", func() bool {
		for _, m := range fs.messages() {
			if m.GetAgentDescription() != nil {
				first = m
				return true
			}
		}
		return false
	})
	caps := protobufs.AgentCapabilities(first.GetCapabilities())
	if caps&remoteCaps != 0 {
		t.Errorf("capabilities %b include AcceptsRemoteConfig or ReportsRemoteConfig", caps)
	}
	for _, c := range []protobufs.AgentCapabilities{
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth,
		protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig,
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat,
	} {
		if caps&c == 0 {
			t.Errorf("capabilities %b lack %s", caps, c)
		}
	}
	if got, _ := attr(first.GetAgentDescription().GetIdentifyingAttributes(), KindAttribute); got != KindGateway {
		t.Errorf("%s = %q", KindAttribute, got)
	}
	// The server sent a remote config in its first answer: the agent goes
	// on (heartbeats every second) and never reports on it.
	until(t, 10*time.Second, "three more messages after the remote config", func() bool { return len(fs.messages()) >= 4 })
	for _, m := range fs.messages() {
		// opamp-go sends an empty status in the first message.
		if rs := m.GetRemoteConfigStatus(); len(rs.GetLastRemoteConfigHash()) > 0 || rs.GetStatus() != protobufs.RemoteConfigStatuses_RemoteConfigStatuses_UNSET {
			t.Fatalf("a gateway agent reported on the remote config: %v", rs)
		}
	}
}

func TestASidecarAgentAppliesRemoteConfig(t *testing.T) {
	fs := newFakeServer(t)
	applied := make(chan []byte, 1)
	id := Identity{PodName: "web-0", PodUID: "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e", Namespace: "shop"}
	startAgent(t, fs, id, func(_ context.Context, body []byte, _ func()) error {
		applied <- body
		return nil
	})
	select {
	case body := <-applied:
		if string(body) != `{"exporters":[]}` {
			t.Fatalf("applied %q", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sidecar agent did not apply the remote config")
	}
	until(t, 10*time.Second, "an APPLIED status", func() bool {
		for _, m := range fs.messages() {
			if m.GetRemoteConfigStatus().GetStatus() == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED {
				return true
			}
		}
		return false
	})
	for _, m := range fs.messages() {
		if d := m.GetAgentDescription(); d != nil {
			if caps := protobufs.AgentCapabilities(m.GetCapabilities()); caps&remoteCaps != remoteCaps {
				t.Errorf("capabilities %b lack AcceptsRemoteConfig or ReportsRemoteConfig", caps)
			}
			if got, _ := attr(d.GetIdentifyingAttributes(), KindAttribute); got != KindSidecar {
				t.Errorf("%s = %q", KindAttribute, got)
			}
			return
		}
	}
	t.Fatal("no description")
}
