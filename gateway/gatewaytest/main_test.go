package gatewaytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
)

// The tests run in a network namespace of their own (root, as CI runs):
// every replica has its own 127.0.0.x address with the ports a pod has, the
// test's DNS server answers on 127.0.0.1:53, and nothing else on the
// machine can collide with them or see them.
func TestMain(m *testing.M) {
	// Build (or find) the binary and helm before entering the namespace.
	if os.Getenv("FARGATE_OTEL_GATEWAYTEST_PREPARED") == "" {
		for name, find := range map[string]func() (string, error){BinaryEnvVar: BinaryPath, HelmEnvVar: HelmPath} {
			p, err := find()
			if err != nil {
				fmt.Fprintln(os.Stderr, "gatewaytest:", err)
				os.Exit(1)
			}
			_ = os.Setenv(name, p)
		}
		_ = os.Setenv("FARGATE_OTEL_GATEWAYTEST_PREPARED", "1")
	}
	os.Exit(cluster.RunInNetNS(m))
}

// nameserver is the test's DNS server, for the replicas' resolv.conf.
const nameserver = "127.0.0.1"

// replicaIP is the address of replica i (0-based): 127.0.0.2, .3, ...
func replicaIP(i int) string { return fmt.Sprintf("127.0.0.%d", i+2) }

// startReplica renders the chart's config with values and the replica's
// own sink as its OTLP destination, runs it, and waits until it is
// healthy. It is stopped when the test ends, its log shown if it failed.
func startReplica(ctx context.Context, t *testing.T, i int, values func(sink string) map[string]any, env ...string) (*Replica, *otlpsink.Sink) {
	t.Helper()
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	cfg, err := RenderConfig(ctx, values(sink.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("fargate-otel-gateway-%d", i)
	r, err := Start(Options{Config: cfg, IP: replicaIP(i), Name: name, Nameserver: nameserver, Env: env}, filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			t.Logf("%s, last lines of its log:\n%s", name, Tail(r.Logs(), 30))
		}
	})
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.WaitHealthy(hctx); err != nil {
		t.Fatal(err)
	}
	return r, sink
}

// otlpValues are the chart values of a gateway whose destination is one
// OTLP/gRPC sink, with overrides of gateway.* merged in.
func otlpValues(sink string, gateway map[string]any) map[string]any {
	return map[string]any{
		"gateway":      gateway,
		"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": sink, "insecure": true}},
	}
}

// poll calls cond until it returns nil or the deadline passes, returning
// its last error then.
func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}
