// Command collector measures the sidecar collector against its budgets, in
// one run on this machine (make bench-collector):
//
//   - binary size (goal <= 75 MB) and idle RSS with GOMEMLIMIT set as the
//     injector sets it (goal <= 64 MiB);
//   - what the fleet agent adds to both, against the build without it
//     (goals: <= 5 MB, <= 8 MiB; agent.go);
//   - the highest line rate at which the wrapper + collector pipeline stays
//     exactly-once with rotation at 10 MiB (goal >= 20k lines/s);
//   - the latency from the app's write to the OTLP sink at 1k lines/s
//     (goal p99 < 1 s).
//
// It runs the real fargate-otel-tee (wrapping this program as the app) and
// the real fargate-otel-collector with the product's rendered config, and a
// real OTLP/gRPC sink in this process.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

const (
	genEnv = "FARGATE_OTEL_BENCH_GENERATOR"
	token  = "bench-token"
	// The injector's default collector memory limit, and the GOMEMLIMIT it
	// derives (80%).
	memoryLimitMiB = 256
	goMemLimit     = "204MiB"
)

func main() {
	if os.Getenv(genEnv) != "" {
		os.Exit(generate())
	}
	rates := flag.String("rates", "10000,20000,30000,40000,50000,60000,80000", "line rates (lines/s) to try for exactly-once, in increasing order")
	stepSeconds := flag.Int("step-seconds", 15, "seconds of writing per rate")
	latencySeconds := flag.Int("latency-seconds", 20, "seconds of writing at 1k lines/s for the latency")
	idleSeconds := flag.Int("idle-seconds", 12, "seconds of idle RSS sampling")
	agentOnly := flag.Bool("agent-only", false, "measure only what the fleet agent costs (size and idle RSS against the build without it)")
	withAgent := flag.Bool("agent", true, "measure what the fleet agent costs (false: a binary without it can be measured)")
	flag.Parse()
	if err := run(*rates, *stepSeconds, *latencySeconds, *idleSeconds, *agentOnly, *withAgent); err != nil {
		fmt.Fprintln(os.Stderr, "bench-collector:", err)
		os.Exit(1)
	}
}

type result struct {
	name, measured, goal string
	ratio                float64 // measured / goal; 0 when there is no goal
	met                  bool
}

func run(rateList string, stepSeconds, latencySeconds, idleSeconds int, agentOnly, withAgent bool) error {
	bin, err := collectortest.BinaryPath()
	if err != nil {
		return err
	}
	tee, err := teeBinary()
	if err != nil {
		return err
	}
	var results []result
	fmt.Printf("collector benchmarks on %d CPUs, %s\n\n", runtime.NumCPU(), runtime.Version())

	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	mb := float64(st.Size()) / 1e6
	results = append(results, result{"binary size", fmt.Sprintf("%.1f MB (%.1f MiB)", mb, float64(st.Size())/(1<<20)), "<= 75 MB", mb / 75, mb <= 75})

	if withAgent {
		agent, err := agentCost(bin, idleSeconds)
		if err != nil {
			return fmt.Errorf("fleet agent: %w", err)
		}
		results = append(results, agent...)
	}
	if agentOnly {
		printResults(results)
		return nil
	}

	idle, err := idleRSS(idleSeconds)
	if err != nil {
		return fmt.Errorf("idle RSS: %w", err)
	}
	results = append(results, result{"idle RSS, GOMEMLIMIT=" + goMemLimit, fmt.Sprintf("%.1f MiB", idle), "<= 64 MiB", idle / 64, idle <= 64})

	lat, err := latency(tee, latencySeconds)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	p50, p99 := percentile(lat.latencies, 50), percentile(lat.latencies, 99)
	fmt.Printf("latency at 1000 lines/s for %ds (the first 2s left out): %d lines, exactly once: %v, p50 %s, p99 %s, max %s\n",
		latencySeconds, lat.lines, lat.exactlyOnce(), p50.Round(time.Millisecond), p99.Round(time.Millisecond), percentile(lat.latencies, 100).Round(time.Millisecond))
	results = append(results,
		result{"latency p50 at 1k lines/s", p50.Round(time.Millisecond).String(), "", 0, true},
		result{"latency p99 at 1k lines/s", p99.Round(time.Millisecond).String(), "< 1s", p99.Seconds(), p99 < time.Second})

	best := 0
	var firstFail string
	for _, s := range strings.Split(rateList, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("rate %q: %w", s, err)
		}
		r, err := runPipeline(tee, rate, stepSeconds, "10Mi", 4)
		if err != nil {
			return fmt.Errorf("rate %d: %w", rate, err)
		}
		fmt.Printf("rate %6d lines/s for %ds: %s\n", rate, stepSeconds, r.summary())
		if !r.ok() {
			firstFail = fmt.Sprintf("%d/s: %s", rate, r.verdict())
			break
		}
		best = rate
	}
	measured := fmt.Sprintf("%d lines/s", best)
	if firstFail != "" {
		measured += " (next step failed: " + firstFail + ")"
	} else {
		measured += " (every rate tried passed)"
	}
	results = append(results, result{"exactly-once line rate, rotation at 10 MiB", measured, ">= 20000 lines/s", float64(best) / 20000, best >= 20000})
	printResults(results)
	return nil
}

func printResults(results []result) {
	fmt.Printf("\n%-48s %-52s %-18s %s\n", "budget", "measured", "goal", "ratio to goal")
	for _, r := range results {
		ratio := ""
		if r.ratio > 0 {
			ratio = fmt.Sprintf("%.2f", r.ratio)
			if !r.met {
				ratio += "  MISSED"
			}
		}
		fmt.Printf("%-48s %-52s %-18s %s\n", r.name, r.measured, r.goal, ratio)
	}
}

// pod is the environment of one collector run: a logs volume, a fake
// kubelet behind the nodes/proxy path, the sink and the rendered config.
type pod struct {
	dir, pods string
	sink      *otlpsink.Sink
	kubelet   *httptest.Server
	cfg       sidecarconfig.Config
	config    []byte
	health    string
	env       []string
	runFiles  map[string][]byte
	collector *collectortest.Process

	namespace, name, uid, node string
}

func newPod(onLogs func(plog.Logs, time.Time)) (*pod, error) {
	dir, err := os.MkdirTemp("", "bench-collector-")
	if err != nil {
		return nil, err
	}
	p := &pod{dir: dir, pods: filepath.Join(dir, "pods")}
	summary, err := p.loadSummary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.pods, 0o755); err != nil {
		return nil, err
	}
	p.sink, err = otlpsink.Start("127.0.0.1:0", otlpsink.Options{OnLogs: onLogs, DiscardLogs: true})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/nodes/"+p.node+"/proxy/stats/summary", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(summary)
	})
	p.kubelet = httptest.NewTLSServer(mux)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.kubelet.Certificate().Raw})

	cfg := sidecarconfig.Default()
	cfg.ClusterName = "bench"
	cfg.MemoryLimitMiB = memoryLimitMiB
	cfg.Exporters = []sidecarconfig.Exporter{sidecarconfig.GatewayExporter(p.sink.Addr())}
	cfg.LogInclude = []string{p.pods + "/*/*/*.log", p.pods + "/*/*/*.log.*"}
	cfg.LogExclude = []string{p.pods + "/*/*/*.gz", p.pods + "/.*/**"}
	cfg.StorageDir = filepath.Join(p.pods, ".fargate-otel-state")
	cfg.KubeletStats.Endpoint = p.kubelet.URL + "/api/v1/nodes/${env:NODE_NAME}/proxy"
	cfg.KubeletStats.Interval = 10 * time.Second
	cfg.OTLP = sidecarconfig.OTLP{GRPCEndpoint: freeAddr(), HTTPEndpoint: freeAddr()}
	cfg.HealthCheckEndpoint = freeAddr()
	p.cfg = cfg
	if p.config, err = sidecarconfig.Render(cfg); err != nil {
		return nil, err
	}
	p.health = "http://" + cfg.HealthCheckEndpoint + "/"
	p.env = append(collectortest.PodEnv(p.node, p.namespace, p.name, p.uid), "GOMEMLIMIT="+goMemLimit)
	p.runFiles = collectortest.ServiceAccount(token, ca)
	return p, nil
}

func (p *pod) loadSummary() ([]byte, error) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		return nil, err
	}
	// Recorded from a real kubelet by the e2e tests.
	path := filepath.Join(root, "e2e", "testdata", "stats-summary.json")
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s struct {
		Node struct {
			NodeName string `json:"nodeName"`
		} `json:"node"`
		Pods []struct {
			PodRef struct{ Name, Namespace, UID string } `json:"podRef"`
		} `json:"pods"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.Pods) == 0 {
		return nil, fmt.Errorf("%s: a stats summary without a pod", path)
	}
	p.node, p.namespace, p.name, p.uid = s.Node.NodeName, s.Pods[0].PodRef.Namespace, s.Pods[0].PodRef.Name, s.Pods[0].PodRef.UID
	return body, nil
}

func (p *pod) start() error {
	c, err := collectortest.StartProcess(collectortest.Options{Config: p.config, Env: p.env, RunFiles: p.runFiles}, p.dir)
	if err != nil {
		return err
	}
	p.collector = c
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.WaitHealthy(ctx, p.health)
}

func (p *pod) close() {
	if p.collector != nil {
		p.collector.Kill()
	}
	p.sink.Close()
	p.kubelet.Close()
	_ = os.RemoveAll(p.dir)
}

// rss reads VmRSS (or VmHWM, the peak) of pid in MiB.
func rss(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// idleRSS runs the product config with nothing to do but kubelet scrapes
// and reports the highest RSS sampled.
func idleRSS(seconds int) (float64, error) {
	p, err := newPod(nil)
	if err != nil {
		return 0, err
	}
	defer p.close()
	if err := p.start(); err != nil {
		return 0, err
	}
	var high float64
	var samples []float64
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	for time.Now().Before(deadline) {
		v, err := rss(p.collector.Pid(), "VmRSS")
		if err != nil {
			return 0, err
		}
		samples = append(samples, v)
		high = max(high, v)
		time.Sleep(500 * time.Millisecond)
	}
	slices.Sort(samples)
	fmt.Printf("idle RSS over %ds (%d samples, kubelet scrape every 10s): median %.1f MiB, max %.1f MiB\n",
		seconds, len(samples), samples[len(samples)/2], high)
	return high, nil
}

// run of the wrapper + collector pipeline at one rate.
type pipelineRun struct {
	mu    sync.Mutex
	lines int
	// warmup lines (the first 2s) are checked but left out of the
	// latencies: they include the collector discovering the new file.
	warmup     int
	seen       []uint8
	dups       int
	bad        int
	latencies  []time.Duration
	lastRecv   time.Time
	appDone    time.Time
	caughtUp   bool
	peakRSSMiB float64
}

func (r *pipelineRun) onLogs(ld plog.Logs, received time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			recs := sls.At(j).LogRecords()
			for k := 0; k < recs.Len(); k++ {
				seq, written, ok := parseLine(recs.At(k).Body().Str())
				if !ok || seq >= len(r.seen) {
					r.bad++
					continue
				}
				if r.seen[seq] > 0 {
					r.dups++
				}
				r.seen[seq]++
				if seq >= r.warmup {
					r.latencies = append(r.latencies, received.Sub(written))
				}
			}
		}
	}
	r.lastRecv = received
}

func (r *pipelineRun) missing() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.seen {
		if c == 0 {
			n++
		}
	}
	return n
}

func (r *pipelineRun) exactlyOnce() bool { return r.missing() == 0 && r.dups == 0 && r.bad == 0 }

// ok: exactly once, and the collector kept up (everything arrived within
// 2s of the app's last write).
func (r *pipelineRun) ok() bool { return r.exactlyOnce() && r.caughtUp }

func (r *pipelineRun) verdict() string {
	var why []string
	if m := r.missing(); m > 0 {
		why = append(why, fmt.Sprintf("%d lost (not there a minute after the last write)", m))
	}
	if r.dups > 0 {
		why = append(why, fmt.Sprintf("%d repeated", r.dups))
	}
	if r.bad > 0 {
		why = append(why, fmt.Sprintf("%d unexpected records", r.bad))
	}
	if !r.caughtUp {
		why = append(why, "fell behind (not every line within 2s of the last write)")
	}
	if len(why) == 0 {
		return "ok"
	}
	return strings.Join(why, ", ")
}

func (r *pipelineRun) summary() string {
	r.mu.Lock()
	lag := r.lastRecv.Sub(r.appDone)
	r.mu.Unlock()
	return fmt.Sprintf("%d lines, %s, last line %s after the last write, p99 latency %s, collector peak RSS %.0f MiB",
		r.lines, r.verdict(), lag.Round(time.Millisecond), percentile(r.latencies, 99).Round(time.Millisecond), r.peakRSSMiB)
}

// runPipeline writes rate lines/s for seconds through the wrapper (rotating
// at maxSize, keeping backups) into a fresh collector and checks what the
// sink got.
func runPipeline(tee string, rate, seconds int, maxSize string, backups int) (*pipelineRun, error) {
	r := &pipelineRun{lines: rate * seconds, warmup: 2 * rate}
	r.seen = make([]uint8, r.lines)
	r.latencies = make([]time.Duration, 0, r.lines)
	p, err := newPod(r.onLogs)
	if err != nil {
		return nil, err
	}
	defer p.close()
	if err := p.start(); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(tee, "--log-dir", p.pods, "--container", "app",
		"--namespace", p.namespace, "--pod", p.name, "--pod-uid", p.uid,
		"--max-size", maxSize, "--max-backups", strconv.Itoa(backups), "--", self)
	cmd.Env = append(os.Environ(), genEnv+"=1", "GEN_RATE="+strconv.Itoa(rate), "GEN_LINES="+strconv.Itoa(r.lines))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("the wrapped generator failed: %w", err)
	}
	r.mu.Lock()
	r.appDone = time.Now()
	r.mu.Unlock()
	// Kept up: everything arrived within 2s of the last write. If not, wait
	// longer to tell late lines from lost ones.
	for _, wait := range []time.Duration{2 * time.Second, time.Minute} {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) && r.missing() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if wait == 2*time.Second {
			r.caughtUp = r.missing() == 0
		}
	}
	r.peakRSSMiB, _ = rss(p.collector.Pid(), "VmHWM")
	// A clean stop drains the exporter's queue: late lines and repeats show
	// up before the run is judged.
	if err := p.collector.Stop(30 * time.Second); err != nil {
		return nil, err
	}
	return r, nil
}

// latency writes 1000 lines/s for seconds and returns the run.
func latency(tee string, seconds int) (*pipelineRun, error) {
	return runPipeline(tee, 1000, seconds, "10Mi", 4)
}

// generate is the app: GEN_LINES lines, alternately on stdout and stderr,
// at GEN_RATE lines/s, each carrying its sequence number and write time.
func generate() int {
	n, _ := strconv.Atoi(os.Getenv("GEN_LINES"))
	rate, _ := strconv.Atoi(os.Getenv("GEN_RATE"))
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	pad := strings.Repeat("x", 50)
	start := time.Now()
	buf := make([]byte, 0, 128)
	for i := 0; i < n; {
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			w, stream := out, "stdout"
			if i%2 == 1 {
				w, stream = errw, "stderr"
			}
			buf = fmt.Appendf(buf[:0], "seq=%08d t=%019d stream=%s %s\n", i, time.Now().UnixNano(), stream, pad)
			_, _ = w.Write(buf)
		}
		_ = out.Flush()
		_ = errw.Flush()
		time.Sleep(time.Millisecond)
	}
	return 0
}

// parseLine reads "seq=%08d t=%019d ..." back.
func parseLine(body string) (seq int, written time.Time, ok bool) {
	if len(body) < 34 || !strings.HasPrefix(body, "seq=") || body[12:15] != " t=" {
		return 0, time.Time{}, false
	}
	seq, err1 := strconv.Atoi(body[4:12])
	ns, err2 := strconv.ParseInt(body[15:34], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return seq, time.Unix(0, ns), true
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i]
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// teeBinary is $FARGATE_OTEL_TEE_BIN (set by make bench-collector), else a
// fresh build of ./cmd/fargate-otel-tee.
func teeBinary() (string, error) {
	if p := os.Getenv("FARGATE_OTEL_TEE_BIN"); p != "" {
		return p, nil
	}
	out := filepath.Join(os.TempDir(), "bench-fargate-otel-tee")
	return out, gobuild.Build(context.Background(), "./cmd/fargate-otel-tee", out)
}
