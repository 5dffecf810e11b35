// Command parsing measures what log parsing costs the sidecar: the real
// collector reads one CRI file (JSON log lines with Java stack traces among
// them) to an OTLP sink, with no parsing (the reference, in the same run)
// and with multiline, JSON, and both. It prints each run's CPU time and
// line rate, and their ratios to the reference.
//
//	go run ./bench/parsing [-lines 200000] [-rounds 2]
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig/collectortest"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

const (
	namespace, podName, uid = "bench", "api-0", "3f1c2d4e-0000-4000-8000-000000000001"
	// Every block: jsonLines log lines, then a Java trace of traceLines lines.
	jsonLines, traceLines = 50, 20
)

type variant struct {
	name    string
	parsing sidecarconfig.Parsing
}

var variants = []variant{
	{"none (reference)", sidecarconfig.Parsing{}},
	{"multiline java", sidecarconfig.Parsing{Multiline: "java"}},
	{"json", sidecarconfig.Parsing{Parser: "json"}},
	{"multiline java + json", sidecarconfig.Parsing{Multiline: "java", Parser: "json"}},
}

func main() {
	lines := flag.Int("lines", 200000, "lines in the file")
	rounds := flag.Int("rounds", 2, "runs of each variant, in turns (the best counts)")
	flag.Parse()
	if err := run(*lines, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench parsing:", err)
		os.Exit(1)
	}
}

type result struct {
	cpu, wall time.Duration
	records   int64
}

func run(lines, rounds int) error {
	dir, err := os.MkdirTemp("", "bench-parsing-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	file, blocks := criFile(lines)
	total := blocks * (jsonLines + traceLines)
	fmt.Printf("bench parsing: %d lines (%d JSON lines, %d Java traces of %d lines), %.1f MB, %d round(s)\n",
		total, blocks*jsonLines, blocks, traceLines, float64(len(file))/1e6, rounds)

	best := make([]result, len(variants))
	for r := range rounds {
		for i, v := range variants {
			want := int64(total)
			if v.parsing.Multiline != "" {
				want = int64(blocks * (jsonLines + 1))
			}
			res, err := once(filepath.Join(dir, fmt.Sprintf("%d-%d", r, i)), file, v.parsing, want)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			if best[i].cpu == 0 || res.cpu < best[i].cpu {
				best[i] = res
			}
		}
	}
	ref := best[0]
	fmt.Printf("%-24s %9s %9s %12s %10s %10s\n", "variant", "records", "CPU", "lines/s", "CPU ratio", "rate ratio")
	for i, v := range variants {
		b := best[i]
		rate := float64(total) / b.wall.Seconds()
		fmt.Printf("%-24s %9d %8.2fs %12.0f %9.2fx %9.2fx\n", v.name, b.records, b.cpu.Seconds(), rate,
			b.cpu.Seconds()/ref.cpu.Seconds(), rate/(float64(total)/ref.wall.Seconds()))
	}
	return nil
}

// once runs the collector on the file with parsing p until the sink has
// want records, and returns its CPU time and the wall time from start.
func once(dir string, file []byte, p sidecarconfig.Parsing, want int64) (result, error) {
	pods := filepath.Join(dir, "pods")
	logDir := filepath.Join(pods, namespace+"_"+podName+"_"+uid, "app")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return result{}, err
	}
	if err := os.WriteFile(filepath.Join(logDir, "0.log"), file, 0o644); err != nil {
		return result{}, err
	}
	var got atomic.Int64
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{DiscardLogs: true,
		OnLogs: func(ld plog.Logs, _ time.Time) { got.Add(int64(ld.LogRecordCount())) }})
	if err != nil {
		return result{}, err
	}
	defer sink.Close()

	cfg := sidecarconfig.Default()
	cfg.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
	cfg.MemoryLimitMiB = 256
	cfg.DrainTimeout = 0
	cfg.Exporters = []sidecarconfig.Exporter{sidecarconfig.GatewayExporter(sink.Addr())}
	cfg.LogInclude = []string{pods + "/*/*/*.log"}
	cfg.LogExclude = []string{pods + "/.*/**"}
	cfg.StorageDir = filepath.Join(pods, ".fargate-otel-state")
	cfg.OTLP = sidecarconfig.OTLP{GRPCEndpoint: freeAddr(), HTTPEndpoint: freeAddr()}
	cfg.HealthCheckEndpoint = freeAddr()
	cfg.LogParsing.Default = p
	config, err := sidecarconfig.Render(cfg)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	c, err := collectortest.StartProcess(collectortest.Options{
		Config: config,
		Env:    append(collectortest.PodEnv("node-1", namespace, podName, uid), "GOMEMLIMIT=204MiB"),
	}, dir)
	if err != nil {
		return result{}, err
	}
	defer c.Kill()
	deadline := time.Now().Add(5 * time.Minute)
	for got.Load() < want {
		if c.Exited() || time.Now().After(deadline) {
			return result{}, fmt.Errorf("%d of %d records at the sink:\n%s", got.Load(), want, collectortest.Tail(c.Logs(), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
	wall := time.Since(start)
	cpu, err := cpuTime(c.Pid())
	if err != nil {
		return result{}, err
	}
	return result{cpu: cpu, wall: wall, records: got.Load()}, nil
}

// criFile is lines (rounded down to whole blocks) in containerd's format.
func criFile(lines int) ([]byte, int) {
	blocks := lines / (jsonLines + traceLines)
	var b strings.Builder
	t := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	write := func(stream, text string) {
		t = t.Add(time.Millisecond)
		fmt.Fprintf(&b, "%s %s F %s\n", t.Format(time.RFC3339Nano), stream, text)
	}
	for i := range blocks {
		for j := range jsonLines {
			write("stdout", fmt.Sprintf(`{"level":"info","time":"%s","logger":"com.example.Orders","msg":"order %d-%d placed","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","qty":%d}`,
				t.Format(time.RFC3339Nano), i, j, j))
		}
		write("stderr", fmt.Sprintf("java.lang.IllegalStateException: order %d failed", i))
		for k := range traceLines - 3 {
			write("stderr", "\tat com.example.Orders.place(Orders.java:"+strconv.Itoa(100+k)+")")
		}
		write("stderr", `Caused by: java.lang.NumberFormatException: For input string: "x"`)
		write("stderr", "\t... 12 more")
	}
	return []byte(b.String()), blocks
}

// cpuTime is the user and system time of a process (/proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (in parentheses, may hold spaces).
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
