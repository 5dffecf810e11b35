// Command gateway measures the gateway distribution (make bench-gateway),
// in one run on this machine:
//
//   - log records/s and spans/s through one gateway replica on one core
//     (taskset, GOMAXPROCS=1) with the config the chart renders (logs:
//     memory_limiter and batch; traces: the routing tier, the loadbalancing
//     exporter over the test's DNS to its own sampling tier, tail sampling
//     that keeps every trace, span metrics), against the sidecar
//     distribution's plain otlp-to-otlp on the same core, as ratios;
//   - the binary's size against the sidecar's and otelcol-contrib's.
//
// The load generator and the OTLP sink run in this process on the other
// core. A rate is what the sink receives between 10 % and 100 % of the
// records (after the start, the tail sampler's decision wait included, has
// passed), so it is the steady rate of the whole path.
//
// It runs in a network namespace of its own (root), as the integration
// tests do: the replica's DNS server is on 127.0.0.1:53.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	// Exporters compress with gzip by default, as a destination accepts.
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/gateway/gatewaytest"
	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
)

// otelcolContribAtLeastMB is a lower bound of otelcol-contrib v0.159.0's
// size, measured on this machine on 2026-12-03: ocb v0.159.0 on the
// upstream distribution's manifest (opentelemetry-collector-releases,
// distributions/otelcol-contrib/manifest.yaml: 251 modules), built as this
// project builds its own (CGO_ENABLED=0 -trimpath -ldflags "-s -w", its
// build tag grpcnotrace), with only the 60 modules the module proxy here
// serves: 179 are refused at v0.159.0, 4 more need refused dependencies
// (datadog, googlemanagedprometheus, basicauth, kafka receiver), and the
// eBPF receiver obi is built upstream from a prepared source archive. The
// 55 components left made a 191.0 MB binary; the whole distribution is
// larger. Nothing of it is in this repository; -contrib BIN measures a
// real otelcol-contrib binary instead.
const otelcolContribAtLeastMB = 191.0

const (
	prepared  = "FARGATE_OTEL_BENCH_PREPARED"
	benchCore = "1" // the collectors'; the generator and sink get core 0
)

type runner struct{ err error }

func (r *runner) Run() int {
	r.err = run()
	if r.err != nil {
		fmt.Fprintln(os.Stderr, "bench-gateway:", r.err)
		return 1
	}
	return 0
}

var (
	logsTotal  = flag.Int("logs", 1_000_000, "log records sent to each distribution")
	spansTotal = flag.Int("spans", 400_000, "spans sent to each distribution (5 per trace)")
	senders    = flag.Int("senders", 4, "concurrent senders (sidecars), one connection each")
	contrib    = flag.String("contrib", "", "an otelcol-contrib binary to measure (default: the lower bound measured here, see otelcolContribAtLeastMB)")
)

func main() {
	flag.Parse()
	if os.Getenv(prepared) == "" {
		// The binaries, built (or found) before entering the namespace.
		for env, find := range map[string]func() (string, error){gatewaytest.BinaryEnvVar: gatewaytest.BinaryPath, gatewaytest.HelmEnvVar: gatewaytest.HelmPath, collectortest.BinaryEnvVar: collectortest.BinaryPath} {
			p, err := find()
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench-gateway:", err)
				os.Exit(1)
			}
			_ = os.Setenv(env, p)
		}
		_ = os.Setenv(prepared, "1")
	}
	os.Exit(cluster.RunInNetNS(&runner{}))
}

func run() error {
	// This process (generator and sink) on core 0, every thread.
	if out, err := exec.Command("taskset", "-a", "-p", "-c", "0", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset: %w: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-gateway-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	snk, err := startSink("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer snk.stop()
	dns, err := gatewaytest.StartDNS("127.0.0.1:53", gatewaytest.SamplingHost)
	if err != nil {
		return err
	}
	defer dns.Close()

	gw, err := startGateway(ctx, dir, snk.addr, dns)
	if err != nil {
		return err
	}
	sc, err := startSidecarDistribution(ctx, dir, snk.addr)
	if err != nil {
		gw.Kill()
		return err
	}
	defer gw.Kill()
	defer sc.Kill()

	type row struct {
		what   string
		gw, sc result
	}
	var rows []row
	for _, sig := range []string{"logs", "spans"} {
		total := *logsTotal
		if sig == "spans" {
			total = *spansTotal
		}
		g, err := measure(ctx, snk, gw.OTLP(), gw.Pid(), sig, total)
		if err != nil {
			return fmt.Errorf("gateway %s: %w\n%s", sig, err, gatewaytest.Tail(gw.Logs(), 20))
		}
		s, err := measure(ctx, snk, "127.0.0.3:4317", sc.p.Pid(), sig, total)
		if err != nil {
			return fmt.Errorf("sidecar distribution %s: %w\n%s", sig, err, sc.Logs())
		}
		rows = append(rows, row{sig, g, s})
	}

	fmt.Printf("bench-gateway: one replica on one core (taskset -c %s, GOMAXPROCS=1); %d senders and the sink on the other core\n", benchCore, *senders)
	fmt.Printf("%-30s %20s %24s %8s\n", "", "fargate-otel-gateway", "sidecar otlp-to-otlp", "ratio")
	for _, r := range rows {
		unit := "log records"
		if r.what == "spans" {
			unit = "spans"
		}
		fmt.Printf("%-30s %20.0f %24.0f %8.2f\n", unit+"/s", r.gw.rate, r.sc.rate, r.gw.rate/r.sc.rate)
		fmt.Printf("%-30s %19.0f%% %23.0f%%\n", "  its core busy", 100*r.gw.busy, 100*r.sc.busy)
		fmt.Printf("%-30s %20.0f %24.0f %8.2f\n", "  "+unit+" per CPU-second", r.gw.perCPU, r.sc.perCPU, r.gw.perCPU/r.sc.perCPU)
		if r.gw.refused+r.sc.refused > 0 {
			fmt.Printf("%-30s %20d %24d   (refused and resent)\n", "  exports refused", r.gw.refused, r.sc.refused)
		}
	}
	fmt.Println("(gateway spans: routed by trace ID through the loadbalancing exporter to its own sampling tier, tail-sampled (keep all) and counted for span metrics; each span crosses two pipelines)")

	gwMB, err := sizeMB(os.Getenv(gatewaytest.BinaryEnvVar))
	if err != nil {
		return err
	}
	scMB, err := sizeMB(os.Getenv(collectortest.BinaryEnvVar))
	if err != nil {
		return err
	}
	fmt.Printf("binary size: fargate-otel-gateway %.1f MB; the sidecar's fargate-otel-collector %.1f MB (ratio %.2f)\n", gwMB, scMB, gwMB/scMB)
	if *contrib != "" {
		contribMB, err := sizeMB(*contrib)
		if err != nil {
			return err
		}
		fmt.Printf("  otelcol-contrib %s: %.1f MB (ratio %.2f)\n", *contrib, contribMB, gwMB/contribMB)
	} else {
		fmt.Printf("  otelcol-contrib v0.159.0: at least %.1f MB, the 55 of its components the module proxy here serves, built here with ocb (see otelcolContribAtLeastMB); gateway ratio at most %.2f\n",
			otelcolContribAtLeastMB, gwMB/otelcolContribAtLeastMB)
	}
	return nil
}

func sizeMB(path string) (float64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return float64(fi.Size()) / 1e6, nil
}

// startGateway runs a replica at 127.0.0.2 with the chart's config, its
// sampling Service resolving to itself.
func startGateway(ctx context.Context, dir, sink string, dns *gatewaytest.DNS) (*gatewaytest.Replica, error) {
	cfg, err := gatewaytest.RenderConfig(ctx, map[string]any{
		"gateway": map[string]any{"tailSampling": map[string]any{
			"decisionWait": "1s", "numTraces": 200000, "expectedNewTracesPerSec": 20000,
			"policies": []map[string]any{{"name": "all", "type": "always_sample"}},
		}},
		"destinations": map[string]any{"otlp": map[string]any{"enabled": true, "endpoint": sink, "insecure": true}},
	})
	if err != nil {
		return nil, err
	}
	r, err := gatewaytest.Start(gatewaytest.Options{Config: cfg, IP: "127.0.0.2", Name: "fargate-otel-gateway-0", Nameserver: "127.0.0.1", Cores: benchCore}, filepath.Join(dir, "gateway"))
	if err != nil {
		return nil, err
	}
	if err := dns.Set(r.IP); err != nil {
		r.Kill()
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.WaitHealthy(hctx); err != nil {
		r.Kill()
		return nil, err
	}
	// The routing tier resolves its backend.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := r.Metric(ctx, "otelcol_loadbalancer_num_backends")
		if err == nil && n == 1 {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.Kill()
			if err != nil {
				return nil, fmt.Errorf("the gateway's own metrics after 30s: %w", err)
			}
			return nil, fmt.Errorf("the gateway's routing tier has %v backends after 30s, want 1", n)
		}
		select {
		case <-ctx.Done():
			r.Kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sidecarProcess is the sidecar distribution run as a plain collector.
type sidecarProcess struct{ p *collectortest.Process }

func (s sidecarProcess) Kill()        { s.p.Kill() }
func (s sidecarProcess) Logs() string { return collectortest.Tail(s.p.Logs(), 20) }

// startSidecarDistribution runs fargate-otel-collector with the plainest
// pipeline: otlp in, batch, otlp out, on the same core.
func startSidecarDistribution(ctx context.Context, dir, sink string) (sidecarProcess, error) {
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.3:4317
processors:
  batch:
    send_batch_size: 8192
    timeout: 1s
exporters:
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
extensions:
  health_check:
    endpoint: 127.0.0.3:13133
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
`, sink)
	sub := filepath.Join(dir, "sidecar")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return sidecarProcess{}, err
	}
	p, err := collectortest.StartProcess(collectortest.Options{Config: []byte(cfg), Env: []string{"GOMAXPROCS=1"}}, sub)
	if err != nil {
		return sidecarProcess{}, err
	}
	// On the gateway's core, every thread.
	if out, err := exec.Command("taskset", "-a", "-p", "-c", benchCore, strconv.Itoa(p.Pid())).CombinedOutput(); err != nil {
		p.Kill()
		return sidecarProcess{}, fmt.Errorf("taskset: %w: %s", err, out)
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitHealthy(hctx, "http://127.0.0.3:13133/"); err != nil {
		p.Kill()
		return sidecarProcess{}, err
	}
	return sidecarProcess{p}, nil
}

// result is one distribution's figures for one signal.
type result struct {
	// rate is what the sink saw between 10 % and 100 % of the records.
	rate float64
	// busy is the collector's CPU time over the wall time of the run (1:
	// its core was saturated, so rate is what one core does).
	busy float64
	// perCPU is records per CPU-second of the collector, over the run.
	perCPU  float64
	refused int64
}

// measure sends total records of sig ("logs" or "spans") to target (the
// collector pid) and returns its figures and how many exports were refused
// (and sent again).
func measure(ctx context.Context, snk *sink, target string, pid int, sig string, total int) (result, error) {
	const perRequest = 500
	reqs := (total + perRequest - 1) / perRequest
	total = reqs * perRequest
	snk.reset(sig, total)
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	var next, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *senders)
	for i := 0; i < *senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = conn.Close() }()
			lc, tc := plogotlp.NewGRPCClient(conn), ptraceotlp.NewGRPCClient(conn)
			logs := logsRequest(perRequest)
			for n := next.Add(1); n <= int64(reqs); n = next.Add(1) {
				var send func() error
				if sig == "logs" {
					send = func() error { _, err := lc.Export(ctx, logs); return err }
				} else {
					// New trace IDs for each request: the tail sampler
					// keeps every trace in memory until it decides.
					spans := tracesRequest(perRequest / 5)
					send = func() error { _, err := tc.Export(ctx, spans); return err }
				}
				for try := 0; ; try++ {
					err := send()
					if err == nil {
						break
					}
					if ctx.Err() != nil || try > 100 {
						errs <- fmt.Errorf("export to %s: %w", target, err)
						return
					}
					refused.Add(1)
					time.Sleep(10 * time.Millisecond) // back off, as an exporter's retry does
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	rate, err := snk.wait(ctx, 2*time.Minute)
	if err != nil {
		return result{}, err
	}
	wall := time.Since(start).Seconds()
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return result{}, err
	}
	return result{rate: rate, busy: (cpu1 - cpu0) / wall, perCPU: float64(total) / (cpu1 - cpu0), refused: refused.Load()}, nil
}

// cpuSeconds is the CPU time (user and system) a process has used.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces), from
	// field 3: utime and stime are fields 14 and 15, in clock ticks.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	var ticks float64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return ticks / 100, nil // USER_HZ is 100 on Linux
}

func logsRequest(n int) plogotlp.ExportRequest {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	for k, v := range map[string]string{"k8s.namespace.name": "shop", "k8s.pod.name": "web-7d9f8-abcde", "k8s.container.name": "app", "service.name": "web"} {
		rl.Resource().Attributes().PutStr(k, v)
	}
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	now := pcommon.NewTimestampFromTime(time.Now())
	for i := 0; i < n; i++ {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(now)
		lr.Body().SetStr(fmt.Sprintf("2026-12-03T10:00:00.000Z INFO request served path=/cart/%d status=200 duration_ms=12 user=u-%06d", i, i))
		lr.Attributes().PutStr("log.iostream", "stdout")
	}
	return plogotlp.NewExportRequestFromLogs(ld)
}

func tracesRequest(traces int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "web")
	rs.Resource().Attributes().PutStr("k8s.pod.name", "web-7d9f8-abcde")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for t := 0; t < traces; t++ {
		var tid pcommon.TraceID
		_, _ = rand.Read(tid[:])
		for s := 0; s < 5; s++ {
			sp := spans.AppendEmpty()
			sp.SetTraceID(tid)
			var sid pcommon.SpanID
			_, _ = rand.Read(sid[:])
			sp.SetSpanID(sid)
			sp.SetName("GET /cart")
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
			sp.Attributes().PutStr("http.route", "/cart")
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// sink counts what arrives and when the counts cross 10 % and 100 %.
type sink struct {
	addr string
	srv  *grpc.Server

	mu           sync.Mutex
	sig          string
	total, count int
	t10, t100    time.Time
	done         chan struct{}
}

func startSink(addr string) (*sink, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sink{addr: lis.Addr().String(), srv: grpc.NewServer()}
	plogotlp.RegisterGRPCServer(s.srv, &logsServer{s: s})
	ptraceotlp.RegisterGRPCServer(s.srv, &tracesServer{s: s})
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

func (s *sink) stop() { s.srv.Stop() }

func (s *sink) reset(sig string, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sig, s.total, s.count = sig, total, 0
	s.t10, s.t100 = time.Time{}, time.Time{}
	s.done = make(chan struct{})
}

func (s *sink) add(sig string, n int) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sig != s.sig || s.done == nil {
		return
	}
	before := s.count
	s.count += n
	if before < s.total/10 && s.count >= s.total/10 {
		s.t10 = now
	}
	if before < s.total && s.count >= s.total {
		s.t100 = now
		close(s.done)
	}
}

func (s *sink) wait(ctx context.Context, timeout time.Duration) (float64, error) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		s.mu.Lock()
		defer s.mu.Unlock()
		return 0, fmt.Errorf("%d of %d %s arrived within %s", s.count, s.total, s.sig, timeout)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.t100.Sub(s.t10).Seconds()
	if d <= 0 {
		return 0, errors.New("no time between 10 % and 100 %: send more")
	}
	return float64(s.total-s.total/10) / d, nil
}

type logsServer struct {
	plogotlp.UnimplementedGRPCServer
	s *sink
}

func (l *logsServer) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	l.s.add("logs", req.Logs().LogRecordCount())
	return plogotlp.NewExportResponse(), nil
}

type tracesServer struct {
	ptraceotlp.UnimplementedGRPCServer
	s *sink
}

func (t *tracesServer) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	t.s.add("spans", req.Traces().SpanCount())
	return ptraceotlp.NewExportResponse(), nil
}
