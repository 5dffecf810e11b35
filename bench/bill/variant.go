package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// variant is a change to the product's config, to measure what a setting
// costs (the defaults measure the product as the injector renders it).
type variant struct {
	compression  string        // the exporter's compression; "" is the product's
	queue        string        // "disk" (the product's) or "memory"
	batch        time.Duration // the exporter's sending_queue batch flush_timeout; 0: no batching
	pollInterval time.Duration // file_log's poll_interval; 0: the product's
	drop         string        // comma-separated processors to leave out of the logs pipeline
	gogc         string        // GOGC for the collector; "": the runtime's default
	operator     string        // file_log's CRI operator: container_cri (the product's) or container (upstream's)
}

func (v *variant) flags() {
	flag.StringVar(&v.compression, "compression", "", "exporter compression: gzip, zstd, snappy or none (default: the product's)")
	flag.StringVar(&v.queue, "queue", "disk", "the exporter's sending queue: disk (the product's), memory, or memory-wait (in memory with wait_for_result)")
	flag.DurationVar(&v.batch, "batch", 0, "batch in the exporter's sending queue with this flush_timeout (0: no batching, the product's)")
	flag.DurationVar(&v.pollInterval, "poll-interval", 0, "file_log poll_interval (0: the product's)")
	flag.StringVar(&v.drop, "drop-processors", "", "processors to leave out of the logs pipeline, e.g. memory_limiter,resource")
	flag.StringVar(&v.gogc, "gogc", "", "GOGC for the collector (default: the runtime's)")
	flag.StringVar(&v.operator, "operator", "container_cri", "file_log's CRI operator: container_cri (the product's) or container (upstream's, format containerd, as the sidecar had it before)")
}

func (v variant) String() string {
	var parts []string
	if v.compression != "" {
		parts = append(parts, "compression "+v.compression)
	}
	if v.queue != "disk" {
		parts = append(parts, "queue "+v.queue)
	}
	if v.batch > 0 {
		parts = append(parts, "exporter batch flush_timeout "+v.batch.String())
	}
	if v.pollInterval > 0 {
		parts = append(parts, "poll_interval "+v.pollInterval.String())
	}
	if v.drop != "" {
		parts = append(parts, "without "+v.drop)
	}
	if v.gogc != "" {
		parts = append(parts, "GOGC="+v.gogc)
	}
	if v.operator != "container_cri" {
		parts = append(parts, "upstream's "+v.operator+" operator")
	}
	if len(parts) == 0 {
		return "the product's config"
	}
	return "the product's config with " + strings.Join(parts, ", ")
}

// exporter changes the gateway exporter's config.
func (v variant) exporter(e *sidecarconfig.Exporter) error {
	if v.compression != "" {
		e.Config["compression"] = v.compression
	}
	q, _ := e.Config["sending_queue"].(map[string]any)
	switch v.queue {
	case "disk":
	case "memory":
		delete(q, "storage")
	case "memory-wait": // accepted only once exported: file_log's offsets wait for the gateway
		delete(q, "storage")
		q["wait_for_result"] = true
	default:
		return fmt.Errorf("-queue %q: give disk, memory or memory-wait", v.queue)
	}
	if v.batch > 0 {
		q["batch"] = map[string]any{"flush_timeout": v.batch.String(), "sizer": "bytes", "min_size": 256 << 10, "max_size": 4 << 20}
	}
	return nil
}

// edit changes the rendered YAML where Config has no setting.
func (v variant) edit(config []byte) ([]byte, error) {
	if v.pollInterval == 0 && v.drop == "" && v.operator == "container_cri" {
		return config, nil
	}
	var m map[string]any
	if err := yaml.Unmarshal(config, &m); err != nil {
		return nil, err
	}
	fileLog := m["receivers"].(map[string]any)["file_log"].(map[string]any)
	if v.pollInterval > 0 {
		fileLog["poll_interval"] = v.pollInterval.String()
	}
	switch v.operator {
	case "container_cri":
	case "container":
		ops := fileLog["operators"].([]any)
		ops[0] = map[string]any{"type": "container", "id": "container-parser", "format": "containerd"}
	default:
		return nil, fmt.Errorf("-operator %q: give container_cri or container", v.operator)
	}
	if v.drop != "" {
		logs := m["service"].(map[string]any)["pipelines"].(map[string]any)["logs"].(map[string]any)
		var keep []any
		for _, p := range logs["processors"].([]any) {
			if !strings.Contains(","+v.drop+",", ","+p.(string)+",") {
				keep = append(keep, p)
			}
		}
		logs["processors"] = keep
	}
	return yaml.Marshal(m)
}

func (v variant) env() []string {
	if v.gogc == "" {
		return nil
	}
	return []string{"GOGC=" + v.gogc}
}

// countingProxy forwards connections to target and counts the bytes the
// collector sends (what the exporter puts on the wire, compressed or not).
type countingProxy struct {
	l     net.Listener
	bytes atomic.Int64
}

func startProxy(target string) (*countingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p, nil
}

func (p *countingProxy) serve(c net.Conn, target string) {
	defer func() { _ = c.Close() }()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	_, _ = io.Copy(counter{up, &p.bytes}, c)
}

type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (p *countingProxy) Addr() string { return p.l.Addr().String() }

// Sent is the bytes the collector has sent so far.
func (p *countingProxy) Sent() int64 { return p.bytes.Load() }

func (p *countingProxy) Close() { _ = p.l.Close() }
