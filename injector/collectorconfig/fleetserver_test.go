package collectorconfig_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
	"google.golang.org/protobuf/proto"

	"github.com/fargate-otel/fargate-otel/internal/pki"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// fleetServer is a real OpAMP server (opamp-go's) over TLS, standing for
// the fleet server in the agent's tests: it checks the agent's token,
// keeps everything the agent reported, and sends live settings as the
// fleet protocol says (docs/fleet-protocol.md).
type fleetServer struct {
	t        *testing.T
	srv      server.OpAMPServer
	url      string
	ca       *pki.KeyPair
	token    string
	caFile   string // the CA the agent trusts
	tokenDir string

	mu        sync.Mutex
	conns     []types.Connection
	tokens    []string // Authorization of each connection
	refused   int
	raw       [][]byte // every AgentToServer, marshalled
	last      *protobufs.AgentToServer
	desc      *protobufs.AgentDescription
	health    *protobufs.ComponentHealth
	effective *protobufs.EffectiveConfig
	status    *protobufs.RemoteConfigStatus
	statuses  []*protobufs.RemoteConfigStatus
	uids      map[string]bool
	figures   []map[string]any
	overrides *protobufs.AgentRemoteConfig
	changed   chan struct{}
}

// newCA is a fleet CA and its PEM in a file (the agent's CA file).
func newCA(t *testing.T, name string) (*pki.KeyPair, string) {
	t.Helper()
	ca, err := pki.NewCA(pki.Spec{CommonName: name, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return ca, path
}

// startFleetServer serves OpAMP with a certificate for 127.0.0.1 signed by
// ca (nil: a fresh CA, which the agent is given).
func startFleetServer(t *testing.T, ca *pki.KeyPair) *fleetServer {
	t.Helper()
	fs := &fleetServer{t: t, token: "fleet-token-1", uids: map[string]bool{}, changed: make(chan struct{})}
	if ca == nil {
		ca, fs.caFile = newCA(t, "fargate-otel fleet test CA")
	}
	fs.ca = ca
	fs.tokenDir = t.TempDir()
	fs.writeToken(fs.token)
	leaf, err := pki.Issue(ca, pki.Spec{CommonName: "fargate-otel-fleet", IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fs.srv = server.New(nil)
	err = fs.srv.Start(server.StartSettings{
		ListenEndpoint: "127.0.0.1:0",
		ListenPath:     "/v1/opamp",
		TLSConfig:      &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Settings: server.Settings{
			CustomCapabilities: []string{"io.fargate-otel.figures"},
			Callbacks:          types.Callbacks{OnConnecting: fs.onConnecting},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.stop)
	fs.url = "wss://" + fs.srv.Addr().String() + "/v1/opamp"
	return fs
}

func (fs *fleetServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fs.srv.Stop(ctx)
}

func (fs *fleetServer) tokenFile() string { return filepath.Join(fs.tokenDir, "token") }

func (fs *fleetServer) writeToken(tok string) {
	if err := os.WriteFile(fs.tokenFile(), []byte(tok+"\n"), 0o600); err != nil {
		fs.t.Fatal(err)
	}
	fs.mu.Lock()
	fs.token = tok
	fs.mu.Unlock()
}

// env is the agent's env for a sidecar connecting here.
func (fs *fleetServer) env() []string {
	return []string{
		"FARGATE_OTEL_FLEET_ENDPOINT=" + fs.url,
		"FARGATE_OTEL_FLEET_TOKEN_FILE=" + fs.tokenFile(),
		"FARGATE_OTEL_FLEET_CA_FILE=" + fs.caFile,
		"FARGATE_OTEL_FLEET_HEARTBEAT=1s",
		"FARGATE_OTEL_INJECTOR_VERSION=9.8.7",
		"FARGATE_OTEL_EXPORTERS_SOURCE=configmap:exporters/sidecar.json",
	}
}

func (fs *fleetServer) onConnecting(r *http.Request) types.ConnectionResponse {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	got := r.Header.Get("Authorization")
	fs.tokens = append(fs.tokens, got)
	if got != "Bearer "+fs.token {
		fs.refused++
		return types.ConnectionResponse{Accept: false, HTTPStatusCode: http.StatusUnauthorized}
	}
	return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
		OnConnected: func(_ context.Context, c types.Connection) {
			fs.mu.Lock()
			fs.conns = append(fs.conns, c)
			fs.notifyLocked()
			fs.mu.Unlock()
		},
		OnMessage: fs.onMessage,
	}}
}

func (fs *fleetServer) notifyLocked() {
	close(fs.changed)
	fs.changed = make(chan struct{})
}

func (fs *fleetServer) onMessage(_ context.Context, _ types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	raw, _ := proto.Marshal(msg)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	defer fs.notifyLocked()
	fs.raw = append(fs.raw, raw)
	fs.last = msg
	fs.uids[string(msg.GetInstanceUid())] = true
	if msg.AgentDescription != nil {
		fs.desc = msg.AgentDescription
	}
	if msg.Health != nil {
		fs.health = msg.Health
	}
	if msg.EffectiveConfig != nil {
		fs.effective = msg.EffectiveConfig
	}
	if msg.RemoteConfigStatus != nil {
		fs.status = msg.RemoteConfigStatus
		fs.statuses = append(fs.statuses, msg.RemoteConfigStatus)
	}
	if cm := msg.GetCustomMessage(); cm != nil && cm.Capability == "io.fargate-otel.figures" && cm.Type == "figures" {
		var f map[string]any
		if err := json.Unmarshal(cm.Data, &f); err == nil {
			fs.figures = append(fs.figures, f)
		}
	}
	resp := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid}
	// As the fleet server does: the live settings on connect, when the
	// agent's last hash differs.
	if fs.overrides != nil && string(msg.GetRemoteConfigStatus().GetLastRemoteConfigHash()) != string(fs.overrides.ConfigHash) && msg.AgentDescription != nil {
		resp.RemoteConfig = fs.overrides
	}
	return resp
}

// push sends live settings to every connected agent and keeps them for the
// next connection.
func (fs *fleetServer) push(o sidecarconfig.Overrides) []byte {
	fs.t.Helper()
	body, err := o.Encode()
	if err != nil {
		fs.t.Fatal(err)
	}
	return fs.pushBody(body)
}

func (fs *fleetServer) pushBody(body []byte) []byte {
	sum := sha256.Sum256(body)
	rc := &protobufs.AgentRemoteConfig{
		ConfigHash: sum[:],
		Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			sidecarconfig.OverridesConfigName: {Body: body, ContentType: sidecarconfig.OverridesContentType},
		}},
	}
	fs.mu.Lock()
	fs.overrides = rc
	conns := append([]types.Connection(nil), fs.conns...)
	fs.mu.Unlock()
	for _, c := range conns {
		_ = c.Send(context.Background(), &protobufs.ServerToAgent{RemoteConfig: rc})
	}
	return sum[:]
}

// await polls cond (under the server's lock) until it holds.
func (fs *fleetServer) await(timeout time.Duration, what string, cond func() bool) {
	fs.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		fs.mu.Lock()
		ok, changed := cond(), fs.changed
		fs.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			fs.t.Fatalf("timed out after %s waiting for the fleet server to see %s", timeout, what)
		}
	}
}

// awaitStatus waits for a remote config status of hash.
func (fs *fleetServer) awaitStatus(hash []byte, want protobufs.RemoteConfigStatuses) *protobufs.RemoteConfigStatus {
	fs.t.Helper()
	var got *protobufs.RemoteConfigStatus
	fs.await(90*time.Second, "remote config status "+want.String(), func() bool {
		for _, s := range fs.statuses {
			if string(s.LastRemoteConfigHash) == string(hash) && s.Status == want {
				got = s
				return true
			}
		}
		return false
	})
	return got
}

// attr is an attribute of the agent's description ("" when absent).
func attr(kvs []*protobufs.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// everything is every byte the agent sent, for secrets that must not be there.
func (fs *fleetServer) everything() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var b strings.Builder
	for _, r := range fs.raw {
		b.Write(r)
	}
	return b.String()
}
