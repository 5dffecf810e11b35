package collectorconfig_test

// Integration tests: the real fargate-otel-tee wrapping a generator, the real
// fargate-otel-collector running the rendered config, and a real OTLP/gRPC
// sink in this process. The fixture lays out a pod the way the injector does:
// a logs volume seen at "/var/log/pods" (here a temp folder) with the
// collector's state in its .fargate-otel-state sub-folder, the Downward API
// env, and a service account in a private mount namespace.

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

const (
	generatorEnv = "FARGATE_OTEL_TEST_GENERATOR"
	teeBinEnv    = "FARGATE_OTEL_TEE_BIN"
	clusterName  = "test-cluster"
	testToken    = "test-service-account-token"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the app the wrapper runs.
	if os.Getenv(generatorEnv) != "" {
		os.Exit(generate())
	}
	os.Exit(m.Run())
}

// pod is the identity of the pod under test, taken from the stats summary
// the fake kubelet serves so that both agree.
type pod struct{ node, namespace, name, uid string }

type summary struct {
	Node struct {
		NodeName string `json:"nodeName"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
		} `json:"containers"`
	} `json:"pods"`
}

// statsSummary is the /stats/summary body recorded from a real kubelet by
// the e2e tests (e2e/testdata/stats-summary.json).
func statsSummary(t *testing.T) ([]byte, pod, int) {
	t.Helper()
	root, err := gobuild.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "e2e", "testdata", "stats-summary.json")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the recorded kubelet stats summary: %v", err)
	}
	var s summary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(s.Pods) == 0 || s.Node.NodeName == "" {
		t.Fatalf("%s has no node name or no pod", path)
	}
	p := s.Pods[0].PodRef
	return body, pod{node: s.Node.NodeName, namespace: p.Namespace, name: p.Name, uid: p.UID}, len(s.Pods)
}

// fixture is one pod: its logs volume, a fake kubelet behind a fake API
// server path, the sink, and the rendered collector config.
type fixture struct {
	t             *testing.T
	pod           pod
	podsInSummary int
	pods          string // the logs volume, seen by the collector at /var/log/pods
	state         string // the collector's state: pods/.fargate-otel-state
	sink          *otlpsink.Sink
	kubelet       *kubelet
	cfg           sidecarconfig.Config
	config        []byte
	health        string
	env           []string
	runFiles      map[string][]byte
}

type kubelet struct {
	srv      *httptest.Server
	requests atomic.Int64
	badAuth  atomic.Int64
	caPEM    []byte
}

func newFixture(t *testing.T, modify func(*sidecarconfig.Config)) *fixture {
	t.Helper()
	body, p, n := statsSummary(t)
	f := &fixture{t: t, pod: p, podsInSummary: n}
	root := t.TempDir()
	f.pods = filepath.Join(root, "pods")
	f.state = filepath.Join(f.pods, ".fargate-otel-state")
	if err := os.MkdirAll(f.pods, 0o755); err != nil {
		t.Fatal(err)
	}

	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	f.sink = sink

	f.kubelet = startKubelet(t, p.node, body)

	cfg := sidecarconfig.Default()
	cfg.ClusterName = clusterName
	cfg.MemoryLimitMiB = 256
	cfg.Exporters = []sidecarconfig.Exporter{sidecarconfig.GatewayExporter(sink.Addr())}
	cfg.LogInclude = []string{f.pods + "/*/*/*.log", f.pods + "/*/*/*.log.*"}
	cfg.LogExclude = []string{f.pods + "/*/*/*.gz", f.pods + "/.*/**"}
	cfg.StorageDir = f.state
	cfg.KubeletStats.Endpoint = f.kubelet.srv.URL + "/api/v1/nodes/${env:NODE_NAME}/proxy"
	cfg.KubeletStats.Interval = time.Second
	cfg.OTLP = sidecarconfig.OTLP{GRPCEndpoint: freeAddr(t), HTTPEndpoint: freeAddr(t)}
	cfg.HealthCheckEndpoint = freeAddr(t)
	if modify != nil {
		modify(&cfg)
	}
	f.cfg = cfg
	f.config, err = sidecarconfig.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.health = "http://" + cfg.HealthCheckEndpoint + "/"
	f.env = collectortest.PodEnv(p.node, p.namespace, p.name, p.uid)
	f.runFiles = collectortest.ServiceAccount(testToken, f.kubelet.caPEM)
	return f
}

// startCollector runs the collector and waits until it is healthy.
func (f *fixture) startCollector() *collectortest.Process {
	f.t.Helper()
	c := collectortest.Start(f.t, collectortest.Options{Config: f.config, Env: f.env, RunFiles: f.runFiles})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx, f.health); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// startKubelet serves /stats/summary at the API server's nodes/proxy path
// over TLS, for the service account's bearer token only.
func startKubelet(t *testing.T, node string, body []byte) *kubelet {
	k := &kubelet{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/nodes/"+node+"/proxy/stats/summary", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			k.badAuth.Add(1)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		k.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	k.srv = httptest.NewTLSServer(mux)
	t.Cleanup(k.srv.Close)
	k.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw})
	return k
}

// freeAddr is a loopback address with a port that was free a moment ago, so
// that parallel tests do not collide on the product's default ports.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// teeBinary is $FARGATE_OTEL_TEE_BIN, else fargate-otel-tee built from this
// repository.
func teeBinary(t *testing.T) string {
	return gobuild.Binary(t, teeBinEnv, "./cmd/fargate-otel-tee")
}

// criLine is one line of a log file the wrapper wrote.
type criLine struct {
	time   time.Time
	stream string
	tag    string
	text   string
	file   string
}

// readCRIFiles parses every log file (live and rotated) of a container.
func readCRIFiles(t *testing.T, dir string) []criLine {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []criLine
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		fh, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			parts := strings.SplitN(sc.Text(), " ", 4)
			if len(parts) < 3 {
				t.Fatalf("%s: not a CRI line: %q", e.Name(), sc.Text())
			}
			ts, err := time.Parse(time.RFC3339Nano, parts[0])
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			l := criLine{time: ts, stream: parts[1], tag: parts[2], file: e.Name()}
			if len(parts) == 4 {
				l.text = parts[3]
			}
			out = append(out, l)
		}
		_ = fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// pollUntil checks cond every 10ms until it holds or the deadline passes.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
