package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/pki"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// What the fleet agent costs a sidecar: the binary's size and the idle RSS
// with the agent connected to a fleet server (an in-process opamp-go
// server over TLS, reports every agentHeartbeat), each against the
// reference build without the agent (-tags noagent, make
// bench-collector builds it), in the same run. Both run as the injector
// runs the sidecar: FARGATE_OTEL_SIDECAR=true and the pod's settings.

const (
	noAgentEnv     = "FARGATE_OTEL_COLLECTOR_NOAGENT_BIN"
	agentHeartbeat = 2 * time.Second
	// Goals: the agent adds at most this much.
	agentSizeGoalMB  = 5.0
	agentRSSGoalMiB  = 8.0
	agentSettleDelay = 3 * time.Second
)

// opampServer accepts every agent and counts their messages.
type opampServer struct {
	srv      server.OpAMPServer
	url      string
	caFile   string
	token    string
	messages atomic.Int64
	figures  atomic.Int64
}

func startOpAMP(dir string) (*opampServer, error) {
	ca, err := pki.NewCA(pki.Spec{CommonName: "bench fleet CA", NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		return nil, err
	}
	leaf, err := pki.Issue(ca, pki.Spec{CommonName: "fargate-otel-fleet", IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		return nil, err
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		return nil, err
	}
	s := &opampServer{srv: server.New(nil), caFile: filepath.Join(dir, "fleet-ca.crt"), token: filepath.Join(dir, "fleet-token")}
	if err := os.WriteFile(s.caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.token, []byte("bench-fleet-token"), 0o600); err != nil {
		return nil, err
	}
	err = s.srv.Start(server.StartSettings{
		ListenEndpoint: "127.0.0.1:0",
		ListenPath:     "/v1/opamp",
		TLSConfig:      &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Settings: server.Settings{CustomCapabilities: []string{"io.fargate-otel.figures"}, Callbacks: types.Callbacks{
			OnConnecting: func(*http.Request) types.ConnectionResponse {
				return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
					OnMessage: func(_ context.Context, _ types.Connection, m *protobufs.AgentToServer) *protobufs.ServerToAgent {
						s.messages.Add(1)
						if m.GetCustomMessage() != nil {
							s.figures.Add(1)
						}
						return &protobufs.ServerToAgent{InstanceUid: m.InstanceUid}
					},
				}}
			},
		}},
	})
	if err != nil {
		return nil, err
	}
	s.url = "wss://" + s.srv.Addr().String() + "/v1/opamp"
	return s, nil
}

func (s *opampServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Stop(ctx)
}

// idle is what an idle sidecar's RSS samples were (MiB, sorted).
type idle struct{ rss, anon []float64 }

func (i idle) String() string {
	return fmt.Sprintf("%.1f MiB (max %.1f, anonymous %.1f)", median(i.rss), i.rss[len(i.rss)-1], median(i.anon))
}

// idleSidecar runs bin as a pod's sidecar with env added and samples its
// RSS over seconds, once ready (and, when ready is set, once it holds).
func idleSidecar(bin string, env []string, seconds int, ready func() bool) (idle, error) {
	var out idle
	p, err := newPod(nil)
	if err != nil {
		return out, err
	}
	defer p.close()
	settings, err := sidecarconfig.Encode(p.cfg)
	if err != nil {
		return out, err
	}
	env = append(append(slices.Clone(p.env), sidecarconfig.SidecarEnvVar+"=true",
		sidecarconfig.HealthEndpointEnvVar+"="+p.cfg.HealthCheckEndpoint), env...)
	c, err := collectortest.StartProcess(collectortest.Options{Binary: bin, Settings: settings, Env: env, RunFiles: p.runFiles}, p.dir)
	if err != nil {
		return out, err
	}
	p.collector = c
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitHealthy(ctx, p.health); err != nil {
		return out, err
	}
	if ready != nil {
		deadline := time.Now().Add(30 * time.Second)
		for !ready() {
			if time.Now().After(deadline) {
				return out, fmt.Errorf("the agent did not report to the fleet server:\n%s", collectortest.Tail(c.Logs(), 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Past the start's allocations, as an idle sidecar is.
	time.Sleep(agentSettleDelay)
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	for time.Now().Before(deadline) {
		v, err := rss(c.Pid(), "VmRSS")
		if err != nil {
			return out, err
		}
		a, err := rss(c.Pid(), "RssAnon")
		if err != nil {
			return out, err
		}
		out.rss, out.anon = append(out.rss, v), append(out.anon, a)
		time.Sleep(500 * time.Millisecond)
	}
	if c.Exited() {
		return out, errors.New("the collector exited while idle")
	}
	slices.Sort(out.rss)
	slices.Sort(out.anon)
	return out, nil
}

func median(s []float64) float64 { return s[len(s)/2] }

// agentCost measures the agent against the reference build.
func agentCost(bin string, seconds int) ([]result, error) {
	ref := os.Getenv(noAgentEnv)
	if ref == "" {
		return nil, fmt.Errorf("%s is not set: run make bench-collector, which builds the reference collector without the agent (-tags noagent)", noAgentEnv)
	}
	withSt, err := os.Stat(bin)
	if err != nil {
		return nil, err
	}
	refSt, err := os.Stat(ref)
	if err != nil {
		return nil, err
	}
	sizeDiff := float64(withSt.Size()-refSt.Size()) / 1e6

	dir, err := os.MkdirTemp("", "bench-agent-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	fleet, err := startOpAMP(dir)
	if err != nil {
		return nil, err
	}
	defer fleet.stop()
	// Both binaries are copied the same way first: what a process maps of
	// its binary (file-backed RSS) depends on how the file came into the
	// page cache (the kernel maps whole large folios), and the two builds
	// were written differently; in a pod both come from an image layer.
	if bin, err = copyBinary(bin, filepath.Join(dir, "with-agent")); err != nil {
		return nil, err
	}
	if ref, err = copyBinary(ref, filepath.Join(dir, "without-agent")); err != nil {
		return nil, err
	}

	off, err := idleSidecar(bin, nil, seconds, nil)
	if err != nil {
		return nil, fmt.Errorf("the sidecar without an endpoint: %w", err)
	}
	without, err := idleSidecar(ref, nil, seconds, nil)
	if err != nil {
		return nil, fmt.Errorf("the reference sidecar: %w", err)
	}
	before := fleet.figures.Load()
	with, err := idleSidecar(bin, []string{
		"FARGATE_OTEL_FLEET_ENDPOINT=" + fleet.url,
		"FARGATE_OTEL_FLEET_CA_FILE=" + fleet.caFile,
		"FARGATE_OTEL_FLEET_TOKEN_FILE=" + fleet.token,
		"FARGATE_OTEL_FLEET_HEARTBEAT=" + agentHeartbeat.String(),
	}, seconds, func() bool { return fleet.figures.Load() > before })
	if err != nil {
		return nil, fmt.Errorf("the sidecar with the agent: %w", err)
	}
	reports := fleet.figures.Load() - before
	fmt.Printf("fleet agent: binary %.1f MB with it, %.1f MB without (-tags noagent)\n", float64(withSt.Size())/1e6, float64(refSt.Size())/1e6)
	fmt.Printf("fleet agent: idle sidecar RSS over %ds, median: without the agent %s; agent built in, no endpoint %s; agent connected over TLS %s, %d figures reports (every %s)\n",
		seconds, without, off, with, reports, agentHeartbeat)
	rssDiff := median(with.rss) - median(without.rss)
	return []result{
		{"fleet agent: binary size added", fmt.Sprintf("%+.2f MB", sizeDiff), fmt.Sprintf("<= %.0f MB", agentSizeGoalMB), sizeDiff / agentSizeGoalMB, sizeDiff <= agentSizeGoalMB},
		{"fleet agent: idle RSS added (median, connected)", fmt.Sprintf("%+.1f MiB (anonymous %+.1f; off %+.1f)", rssDiff, median(with.anon)-median(without.anon), median(off.rss)-median(without.rss)), fmt.Sprintf("<= %.0f MiB", agentRSSGoalMiB), max(rssDiff, 0.01) / agentRSSGoalMiB, rssDiff <= agentRSSGoalMiB},
	}, nil
}

func copyBinary(from, to string) (string, error) {
	src, err := os.Open(from)
	if err != nil {
		return "", err
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.CopyBuffer(dst, src, make([]byte, 1<<20)); err != nil {
		_ = dst.Close()
		return "", err
	}
	return to, dst.Close()
}
