package collectorconfig_test

import (
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// stopStressEnv sets how many rounds TestTheCollectorStopsWheneverSIGTERMComes
// runs (each round is every moment once); `make test` runs one.
const stopStressEnv = "FARGATE_OTEL_STOP_STRESS_ROUNDS"

// stopStressDumpEnv names a folder where the log (with the goroutine
// dump) of every collector that did not stop in time is kept.
const stopStressDumpEnv = "FARGATE_OTEL_STOP_STRESS_DUMPS"

// stressDrain is the drain timeout of the stressed collectors, and
// stopBound how long after SIGTERM a collector may take to exit: the drain
// plus a margin, well below the kubelet's default grace period (30 s).
const (
	stressDrain = 3 * time.Second
	stopBound   = stressDrain + 5*time.Second
)

// moment is one point at which SIGTERM may come.
type moment struct {
	name string
	// sink is how the gateway behaves: up, down (refuses everything) or
	// slow (each logs request takes a while).
	sink string
	// kubelet is how the kubelet (through the API server's nodes/proxy)
	// answers the stats scrapes: at once, slowly (up to a few seconds) or
	// not at all while the collector runs.
	kubelet string
	// run drives the app and returns once SIGTERM is due; complete says
	// the app had finished by then, so every line must arrive.
	run func(t *testing.T, p *stressPod, rng *rand.Rand) (a *app, complete bool)
}

var stopMoments = []moment{
	{name: "job-pod-after-app-exit", sink: "up", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		// The e2e Job: a few lines paced, the app exits, SIGTERM at once.
		a := startApp(t, p.fixture, 10+rng.IntN(20), 20, "10Mi")
		a.wait(t, time.Minute)
		sendSpan(t, p.cfg.OTLP.GRPCEndpoint, "the job's span")
		return a, true
	}},
	{name: "after-a-burst", sink: "up", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 1000+rng.IntN(4000), 0, "10Mi")
		a.wait(t, time.Minute)
		return a, true
	}},
	{name: "during-a-burst", sink: "up", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 20000, 0, "10Mi")
		waitFor(a, time.Duration(rng.IntN(800))*time.Millisecond)
		return a, false
	}},
	{name: "after-rotations", sink: "up", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 3000+rng.IntN(3000), 0, "64Ki")
		a.wait(t, time.Minute)
		return a, true
	}},
	{name: "during-rotations", sink: "up", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 20000, 20000, "32Ki")
		waitFor(a, time.Duration(rng.IntN(1500))*time.Millisecond)
		return a, false
	}},
	{name: "gateway-down", sink: "down", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 100+rng.IntN(3000), 0, "64Ki")
		a.wait(t, time.Minute)
		return a, false
	}},
	{name: "gateway-slow", sink: "slow", kubelet: "up", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 2000+rng.IntN(8000), 0, "10Mi")
		waitFor(a, time.Duration(rng.IntN(1000))*time.Millisecond)
		return a, false
	}},
	{name: "kubelet-slow", sink: "up", kubelet: "slow", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 10+rng.IntN(20), 20, "10Mi")
		a.wait(t, time.Minute)
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond) // the moment itself, not a wait
		return a, true
	}},
	{name: "kubelet-stuck", sink: "up", kubelet: "stuck", run: func(t *testing.T, p *stressPod, rng *rand.Rand) (*app, bool) {
		a := startApp(t, p.fixture, 10+rng.IntN(20), 20, "10Mi")
		a.wait(t, time.Minute)
		pollUntil(t, 30*time.Second, "a stats scrape in flight", func() bool { return p.kubelet.inFlight.Load() > 0 })
		return a, true
	}},
}

// waitFor waits up to d for the app to end.
func waitFor(a *app, d time.Duration) {
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(d):
	}
}

// TestTheCollectorStopsWheneverSIGTERMComes: SIGTERM reaches the sidecar
// collector at many different moments (right after it starts, after a
// Job's app exited, during a burst, during rotations, with the gateway down
// or slow). Each time the collector exits 0 well within the kubelet's grace
// period, and when the app had finished and the gateway was up, every line
// arrived. A collector that hangs is sent SIGQUIT, and its goroutine dump
// is shown.
func TestTheCollectorStopsWheneverSIGTERMComes(t *testing.T) {
	rounds := 1
	if v := os.Getenv(stopStressEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of rounds", stopStressEnv, v)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0))
	hangs, stops := 0, 0
	for round := range rounds {
		// Right after the start: before the collector is healthy.
		t.Run(fmt.Sprintf("round-%d/right-after-start", round), func(t *testing.T) {
			f := newStressPod(t, "up", "up").fixture
			c := collectortest.Start(t, collectortest.Options{Config: f.config, Env: f.sidecarEnv(), RunFiles: f.runFiles})
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond) // the moment itself, not a wait
			stops++
			if !stopsInTime(t, c, true) {
				hangs++
			}
		})
		for _, m := range stopMoments {
			t.Run(fmt.Sprintf("round-%d/%s", round, m.name), func(t *testing.T) {
				p := newStressPod(t, m.sink, m.kubelet)
				f := p.fixture
				c := f.startSidecarHealthy()
				a, complete := m.run(t, p, rng)
				stops++
				if !stopsInTime(t, c, false) {
					hangs++
					return
				}
				if m.kubelet == "stuck" && !strings.Contains(c.Logs(), "did not end in time") {
					t.Errorf("the collector stopped without saying that it left a scrape behind:\n%s", collectortest.Tail(c.Logs(), 15))
				}
				if complete && m.sink == "up" {
					files := readCRIFiles(t, a.logDir)
					if n := missingAtSink(f, files); n > 0 {
						t.Errorf("%d of %d lines did not arrive before the collector exited", n, len(files))
					}
				}
			})
		}
	}
	t.Logf("%d hangs in %d stops", hangs, stops)
}

// stressPod is a fixture with a kubelet whose answers the test controls.
type stressPod struct {
	*fixture
	kubelet *stressKubelet
}

// newStressPod is a pod with every pipeline, as the injector renders it
// for a Job, whose gateway and kubelet behave as told.
func newStressPod(t *testing.T, sink, kubelet string) *stressPod {
	t.Helper()
	k := startStressKubelet(t, kubelet)
	var opts otlpsink.Options
	if sink == "slow" {
		opts.OnLogs = func(plog.Logs, time.Time) { time.Sleep(200 * time.Millisecond) }
	}
	s, err := otlpsink.Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if sink == "down" {
		s.FailWith(status.Error(codes.Unavailable, "the gateway is down"))
	}
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.KubeletStats.Endpoint = k.srv.URL + "/api/v1/nodes/${env:NODE_NAME}/proxy"
		c.DrainTimeout = stressDrain
		c.Exporters = []sidecarconfig.Exporter{sidecarconfig.GatewayExporter(s.Addr())}
	})
	f.sink = s
	f.runFiles = collectortest.ServiceAccount(testToken, k.caPEM)
	return &stressPod{fixture: f, kubelet: k}
}

// stressKubelet serves the recorded stats summary at once, after up to 3s,
// or never while the test runs.
type stressKubelet struct {
	srv      *httptest.Server
	caPEM    []byte
	inFlight atomic.Int64
}

func startStressKubelet(t *testing.T, mode string) *stressKubelet {
	t.Helper()
	body, _, _ := statsSummary(t)
	k := &stressKubelet{}
	release := make(chan struct{})
	k.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.inFlight.Add(1)
		defer k.inFlight.Add(-1)
		switch mode {
		case "slow":
			select {
			case <-time.After(time.Duration(rand.IntN(3000)) * time.Millisecond):
			case <-release:
			}
		case "stuck":
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(k.srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the handlers end
	k.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw})
	return k
}

func (f *fixture) sidecarEnv() []string {
	return append(append([]string(nil), f.env...), "GOTRACEBACK=all",
		sidecarconfig.SidecarEnvVar+"=true",
		sidecarconfig.HealthEndpointEnvVar+"="+f.cfg.HealthCheckEndpoint)
}

func (f *fixture) startSidecarHealthy() *collectortest.Process {
	f.t.Helper()
	c := collectortest.Start(f.t, collectortest.Options{Config: f.config, Env: f.sidecarEnv(), RunFiles: f.runFiles})
	pollUntil(f.t, 60*time.Second, "the collector healthy", func() bool {
		if c.Exited() {
			f.t.Fatalf("the collector exited:\n%s", collectortest.Tail(c.Logs(), 30))
		}
		return strings.Contains(c.Logs(), "Everything is ready")
	})
	return c
}

// stopsInTime sends SIGTERM and reports whether the collector exited 0
// within stopBound; if not, it sends SIGQUIT and shows the goroutines.
// early says SIGTERM may come before the collector has set up its signal
// handlers, when the default action (exit by the signal) is as prompt.
func stopsInTime(t *testing.T, c *collectortest.Process, early bool) bool {
	t.Helper()
	began := time.Now()
	if err := syscall.Kill(c.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for !c.Exited() && time.Since(began) < stopBound {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(began)
	if !c.Exited() {
		_ = syscall.Kill(c.Pid(), syscall.SIGQUIT)
		for !c.Exited() && time.Since(began) < stopBound+10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		logs := c.Logs()
		if dir := os.Getenv(stopStressDumpEnv); dir != "" {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"), []byte(logs), 0o644)
		}
		before, dump, _ := strings.Cut(logs, "SIGQUIT: quit")
		t.Errorf("the collector did not exit within %s of SIGTERM; its last lines:\n%s\nits goroutines:\n%s",
			stopBound, collectortest.Tail(before, 15), dump)
		return false
	}
	err := c.Wait()
	if early && err != nil && err.Error() == "signal: terminated" {
		err = nil
	}
	if err != nil {
		t.Errorf("the collector exited after %s with %v:\n%s", took, err, collectortest.Tail(c.Logs(), 15))
	}
	t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
	return true
}

// TestTheHardStopEndsAShutdownPastItsDeadline: whatever holds a shutdown,
// the collector exits on its own at FARGATE_OTEL_SHUTDOWN_TIMEOUT after
// SIGTERM, before the kubelet's SIGKILL, and says what it still waited for.
// Here the deadline (1s) comes before the drain's timeout while the gateway
// is down, so the drain is what it cuts short; a sidecar exits 0.
func TestTheHardStopEndsAShutdownPastItsDeadline(t *testing.T) {
	const deadline = time.Second
	p := newStressPod(t, "down", "up")
	f := p.fixture
	env := append(f.sidecarEnv(), "FARGATE_OTEL_SHUTDOWN_TIMEOUT="+deadline.String())
	c := collectortest.Start(t, collectortest.Options{Config: f.config, Env: env, RunFiles: f.runFiles})
	awaitLog(t, c, "the collector ready", "Everything is ready")
	a := startApp(t, f, 500, 0, "10Mi")
	a.wait(t, time.Minute)

	began := time.Now()
	if err := c.Stop(stressDrain + 10*time.Second); err != nil {
		t.Fatalf("the collector did not exit 0 at its deadline: %v", err)
	}
	took := time.Since(began)
	if took >= stressDrain {
		t.Errorf("the collector took %s to exit: its %s deadline did not cut the %s drain", took, deadline, stressDrain)
	}
	logs := c.Logs()
	for _, want := range []string{"did not stop within 1s of SIGTERM", `"still_waiting_for":["drain: `, "not sent"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the collector's log lacks %q:\n%s", want, collectortest.Tail(logs, 10))
		}
	}
	t.Logf("exited %s after SIGTERM (deadline %s, drain timeout %s)", took.Round(time.Millisecond), deadline, stressDrain)
}
