// Command bill measures what a pod's logs cost in CPU on Fargate, where CPU
// is billed: CPU-seconds (user + system) per million log lines through the
// wrapper (fargate-otel-tee) and the sidecar collector together, exported
// to an OTLP sink in this process, for 100-byte and 1,000-byte lines,
// beside coreutils tee writing the same lines to a file in the same run
// (make bench-bill, part of make bench). Goal: at most 3 CPU-seconds per
// million 100-byte lines. The lines look like an app's (-text log: levels,
// paths, numbers, random ids), since the exporter's compression costs what
// the text makes it cost; -text pad is the x's of the first measurements.
// Flags change the collector's config to measure what a setting costs
// (-compression, -queue, -batch, -poll-interval, -drop-processors, -gogc,
// -operator container for the upstream operator); the table of codecs
// that follows measures the exporter's compression on its own.
//
// The app is this program (a generator); its own CPU is left out of both
// figures: the wrapper's rusage, which includes its reaped child, less what
// the generator reports of itself.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

const (
	genEnv       = "FARGATE_OTEL_BILL_GENERATOR"
	genCPUEnv    = "FARGATE_OTEL_BILL_CPU_FILE"
	goalPerMLine = 3.0 // CPU-seconds per million 100-byte lines
)

type size struct {
	bytes, lines, rate int
}

func main() {
	if os.Getenv(genEnv) != "" {
		os.Exit(generate())
	}
	lines100 := flag.Int("lines-100", 600_000, "100-byte lines to send")
	rate100 := flag.Int("rate-100", 20_000, "lines/s of 100 bytes (below the exactly-once rate of make bench-collector)")
	lines1000 := flag.Int("lines-1000", 150_000, "1,000-byte lines to send")
	rate1000 := flag.Int("rate-1000", 5_000, "lines/s of 1,000 bytes")
	flag.StringVar(&textMode, "text", textMode, "what lines hold: pad (a sequence number and x's) or log (lines like an app's: levels, paths, ids, numbers)")
	var v variant
	v.flags()
	codecsOnly := flag.Bool("codecs-only", false, "only measure the exporter's codecs on requests like file_log's")
	flag.Parse()
	if *codecsOnly {
		printCodecs(textMode)
		return
	}
	if err := run([]size{{100, *lines100, *rate100}, {1000, *lines1000, *rate1000}}, v); err != nil {
		fmt.Fprintln(os.Stderr, "bench-bill:", err)
		os.Exit(1)
	}
	fmt.Println()
	printCodecs(textMode)
}

func run(sizes []size, v variant) error {
	tee, err := teeBinary()
	if err != nil {
		return err
	}
	if _, err := collectortest.BinaryPath(); err != nil {
		return err
	}
	fmt.Println("CPU-seconds (user+sys) per million log lines: the wrapper and the sidecar collector (exporting to a local OTLP sink) vs coreutils tee writing the same lines to a file")
	fmt.Println("collector:", v, "- lines:", textMode)
	fmt.Printf("%-11s %-8s %-10s %-10s %-10s %-10s %-9s %-12s %s\n", "line size", "lines", "wrapper", "collector", "together", "tee", "ratio", "wire B/line", "arrived")
	for _, s := range sizes {
		if s.lines == 0 {
			continue
		}
		ours, err := measurePipeline(tee, s, v)
		if err != nil {
			return fmt.Errorf("%d-byte lines: %w", s.bytes, err)
		}
		ref, err := measureTee(s)
		if err != nil {
			return fmt.Errorf("coreutils tee, %d-byte lines: %w", s.bytes, err)
		}
		per := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(s.lines) }
		together := per(ours.wrapper + ours.collector)
		fmt.Printf("%-11s %-8d %-10.2f %-10.2f %-10.2f %-10.2f %-9s %-12.1f %d of %d at %d lines/s\n",
			fmt.Sprintf("%d B", s.bytes), s.lines, per(ours.wrapper), per(ours.collector), together, per(ref),
			fmt.Sprintf("%.1fx", together/max(per(ref), 1e-9)), float64(ours.wire)/float64(s.lines), ours.arrived, s.lines, s.rate)
		if s.bytes == 100 {
			verdict := "met"
			if together > goalPerMLine {
				verdict = "MISSED"
			}
			fmt.Printf("goal: <= %.1f CPU-seconds per million 100-byte lines: %.2f, %s\n", goalPerMLine, together, verdict)
		}
	}
	return nil
}

type pipelineCost struct {
	wrapper, collector time.Duration
	arrived            int
	wire               int64 // bytes the exporter sent
}

// measurePipeline runs the generator wrapped by fargate-otel-tee, its CRI
// files read by a fresh sidecar collector that exports to a sink here, and
// returns each process's CPU from the first line until the last arrived.
func measurePipeline(tee string, s size, v variant) (pipelineCost, error) {
	dir, err := os.MkdirTemp("", "bench-bill-")
	if err != nil {
		return pipelineCost{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	pods := filepath.Join(dir, "pods")
	if err := os.MkdirAll(pods, 0o755); err != nil {
		return pipelineCost{}, err
	}
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{DiscardLogs: true})
	if err != nil {
		return pipelineCost{}, err
	}
	defer sink.Close()
	proxy, err := startProxy(sink.Addr())
	if err != nil {
		return pipelineCost{}, err
	}
	defer proxy.Close()

	// The product's config for a pod (memory limit and GOMEMLIMIT as the
	// injector sets them), with kubelet stats off: this is the bill of logs.
	cfg := sidecarconfig.Default()
	cfg.MemoryLimitMiB = 256
	cfg.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
	gateway := sidecarconfig.GatewayExporter(proxy.Addr())
	if err := v.exporter(&gateway); err != nil {
		return pipelineCost{}, err
	}
	cfg.Exporters = []sidecarconfig.Exporter{gateway}
	cfg.LogInclude = []string{pods + "/*/*/*.log", pods + "/*/*/*.log.*"}
	cfg.LogExclude = []string{pods + "/*/*/*.gz", pods + "/.*/**"}
	cfg.StorageDir = filepath.Join(pods, ".fargate-otel-state")
	cfg.OTLP = sidecarconfig.OTLP{GRPCEndpoint: freeAddr(), HTTPEndpoint: freeAddr()}
	cfg.HealthCheckEndpoint = freeAddr()
	config, err := sidecarconfig.Render(cfg)
	if err != nil {
		return pipelineCost{}, err
	}
	if config, err = v.edit(config); err != nil {
		return pipelineCost{}, err
	}
	const ns, pod, uid = "shop", "web-0", "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e"
	collector, err := collectortest.StartProcess(collectortest.Options{Config: config,
		Env: append(append(collectortest.PodEnv("node-1", ns, pod, uid), "GOMEMLIMIT=204MiB"), v.env()...)}, dir)
	if err != nil {
		return pipelineCost{}, err
	}
	defer collector.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := collector.WaitHealthy(ctx, "http://"+cfg.HealthCheckEndpoint+"/"); err != nil {
		return pipelineCost{}, fmt.Errorf("collector: %w\n%s", err, collectortest.Tail(collector.Logs(), 20))
	}
	before, err := processCPU(collector.Pid())
	if err != nil {
		return pipelineCost{}, err
	}

	self, err := os.Executable()
	if err != nil {
		return pipelineCost{}, err
	}
	genCPU := filepath.Join(dir, "generator-cpu")
	cmd := exec.Command(tee, "--log-dir", pods, "--container", "app", "--namespace", ns, "--pod", pod, "--pod-uid", uid,
		"--max-size", "10Mi", "--max-backups", "4", "--", self)
	cmd.Env = append(os.Environ(), genEnv+"=1", genCPUEnv+"="+genCPU, genArgs(s))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Run(); err != nil {
		return pipelineCost{}, fmt.Errorf("the wrapped generator: %w", err)
	}
	wrapperAndApp := rusageCPU(cmd.ProcessState)
	app, err := readCPU(genCPU)
	if err != nil {
		return pipelineCost{}, err
	}
	if err := sink.Await(ctx, func() bool { return sink.LogCount() >= s.lines }); err != nil {
		return pipelineCost{}, fmt.Errorf("the sink got %d of %d lines: %w", sink.LogCount(), s.lines, err)
	}
	after, err := processCPU(collector.Pid())
	if err != nil {
		return pipelineCost{}, err
	}
	return pipelineCost{wrapper: wrapperAndApp - app, collector: after - before, arrived: sink.LogCount(), wire: proxy.Sent()}, nil
}

// measureTee is the shell's `app | tee FILE`: the same generator into
// coreutils tee, which writes the file and its stdout (discarded).
func measureTee(s size) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "bench-bill-tee-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	gen := exec.Command(self)
	gen.Env = append(os.Environ(), genEnv+"=1", genArgs(s))
	tee := exec.Command("tee", "-a", filepath.Join(dir, "app.log"))
	pipe, err := gen.StdoutPipe()
	if err != nil {
		return 0, err
	}
	// The generator's stderr half goes to tee too, as `2>&1 | tee` would.
	gen.Stderr = gen.Stdout
	tee.Stdin, tee.Stdout = pipe, io.Discard
	if err := gen.Start(); err != nil {
		return 0, err
	}
	if err := tee.Start(); err != nil {
		return 0, err
	}
	if err := errors.Join(gen.Wait(), tee.Wait()); err != nil {
		return 0, err
	}
	return rusageCPU(tee.ProcessState), nil
}

// textMode is -text: what the generated lines hold.
var textMode = "log"

func genArgs(s size) string {
	return fmt.Sprintf("GEN_SPEC=%d,%d,%d,%s", s.bytes, s.lines, s.rate, textMode)
}

// generate is the app: lines of the given size (newline included),
// alternately on stdout and stderr, at a steady rate; at the end it writes
// its own CPU time where the bench asked.
func generate() int {
	var bytes, lines, rate int
	spec := strings.SplitN(os.Getenv("GEN_SPEC"), ",", 4)
	if len(spec) != 4 {
		fmt.Fprintln(os.Stderr, "generator: GEN_SPEC is not bytes,lines,rate,text")
		return 2
	}
	if _, err := fmt.Sscanf(strings.Join(spec[:3], ","), "%d,%d,%d", &bytes, &lines, &rate); err != nil {
		fmt.Fprintln(os.Stderr, "generator: GEN_SPEC:", err)
		return 2
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	pad := strings.Repeat("x", max(bytes-1-len("seq=00000000 "), 0))
	start := time.Now()
	buf := make([]byte, 0, bytes+16)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < lines; {
		due := min(lines, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			w := out
			if i%2 == 1 {
				w = errw
			}
			if spec[3] == "log" {
				buf = appLine(buf[:0], i, bytes, rng)
			} else {
				buf = fmt.Appendf(buf[:0], "seq=%08d %s\n", i, pad)
			}
			_, _ = w.Write(buf)
		}
		_ = out.Flush()
		_ = errw.Flush()
		time.Sleep(time.Millisecond)
	}
	if path := os.Getenv(genCPUEnv); path != "" {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
			_ = os.WriteFile(path, []byte(strconv.FormatInt(ru.Utime.Nano()+ru.Stime.Nano(), 10)), 0o644)
		}
	}
	return 0
}

func rusageCPU(ps *os.ProcessState) time.Duration {
	return ps.UserTime() + ps.SystemTime()
}

func readCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("the generator's CPU: %w", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns), err
}

// processCPU is utime + stime of a running process (its own, not its
// children's), from /proc/PID/stat, in clock ticks of 10 ms.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// teeBinary is $FARGATE_OTEL_TEE_BIN (set by make), else a fresh build.
func teeBinary() (string, error) {
	if p := os.Getenv("FARGATE_OTEL_TEE_BIN"); p != "" {
		return p, nil
	}
	out := filepath.Join(os.TempDir(), "bench-bill-fargate-otel-tee")
	return out, gobuild.Build(context.Background(), "./cmd/fargate-otel-tee", out)
}
