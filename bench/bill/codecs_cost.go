package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"syscall"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// The exporter's compression, measured apart from the pipeline: the
// requests file_log makes of a pod's lines (100 records, each with the
// attributes and resource that container_cri sets), compressed as the
// exporter would, in CPU time per line (this process's user+sys, with
// the codecs' own goroutines and the garbage collector, not the machine's
// other load) and bytes per line.

type codec struct {
	name string
	new  func(io.Writer) io.WriteCloser
}

// codecs reuse one writer each, reset per request, as grpc's gzip and
// configgrpc's zstd and snappy compressors do (from a pool).
func codecs() []codec {
	gz := func(level int) func(io.Writer) io.WriteCloser {
		z, _ := gzip.NewWriterLevel(io.Discard, level)
		return func(w io.Writer) io.WriteCloser { z.Reset(w); return z }
	}
	zs, _ := zstd.NewWriter(io.Discard, zstd.WithWindowSize(512<<10))
	sn := snappy.NewBufferedWriter(io.Discard)
	return []codec{
		{"none", nil},
		{"gzip (level 6, grpc's default)", gz(gzip.DefaultCompression)},
		{"gzip level 1 (BestSpeed)", gz(gzip.BestSpeed)},
		{"zstd (as configgrpc: 512 KiB window)", func(w io.Writer) io.WriteCloser { zs.Reset(w); return zs }},
		{"snappy (framed, as configgrpc)", func(w io.Writer) io.WriteCloser { sn.Reset(w); return sn }},
	}
}

// request is one file_log request of n lines of the given size.
func request(n, size, first int, text string, r *rand.Rand) []byte {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	for k, v := range map[string]string{
		"k8s.namespace.name": "shop", "k8s.pod.name": "web-0", "k8s.pod.uid": "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e",
		"k8s.container.name": "app", "k8s.container.restart_count": "0", "k8s.node.name": "fargate-ip-10-0-1-23.ec2.internal",
		"cloud.provider": "aws", "cloud.platform": "aws_eks",
	} {
		res.PutStr(k, v)
	}
	sl := rl.ScopeLogs().AppendEmpty()
	now := time.Now()
	pad := bytes.Repeat([]byte("x"), max(size-1-len("seq=00000000 "), 0))
	var buf []byte
	for i := range n {
		rec := sl.LogRecords().AppendEmpty()
		rec.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i) * 37 * time.Microsecond)))
		rec.SetObservedTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i)*37*time.Microsecond + 150*time.Millisecond)))
		if text == "log" {
			buf = appLine(buf[:0], first+i, size, r)
		} else {
			buf = fmt.Appendf(buf[:0], "seq=%08d %s\n", first+i, pad)
		}
		rec.Body().SetStr(string(buf[:len(buf)-1]))
		a := rec.Attributes()
		a.PutStr("log.file.path", "/var/log/pods/shop_web-0_0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e/app/0.log")
		a.PutStr("log.iostream", []string{"stdout", "stderr"}[i%2])
		a.PutStr("logtag", "F")
	}
	b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		panic(err)
	}
	return b
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// printCodecs prints each codec's CPU and bytes per line.
func printCodecs(text string) {
	runtime.GC()
	r := rand.New(rand.NewPCG(3, 5))
	fmt.Printf("the exporter's compression alone (requests of 100 lines as file_log sends them, %s lines; CPU of this process):\n", text)
	fmt.Printf("%-11s %-38s %-14s %-12s %s\n", "line size", "codec", "CPU µs/line", "bytes/line", "ratio")
	for _, size := range []int{100, 1000} {
		var reqs [][]byte
		raw := 0
		for i := range 40 {
			reqs = append(reqs, request(100, size, i*100, text, r))
			raw += len(reqs[i])
		}
		lines := float64(len(reqs) * 100)
		for _, c := range codecs() {
			var out bytes.Buffer
			rounds := 0
			start := selfCPU()
			for selfCPU()-start < 300*time.Millisecond || rounds == 0 {
				out.Reset()
				for _, req := range reqs {
					if c.new == nil {
						out.Write(req)
						continue
					}
					w := c.new(&out)
					_, _ = w.Write(req)
					_ = w.Close()
				}
				rounds++
			}
			cpu := selfCPU() - start
			fmt.Printf("%-11s %-38s %-14.2f %-12.1f %.1fx\n", fmt.Sprintf("%d B", size), c.name,
				float64(cpu.Microseconds())/(lines*float64(rounds)), float64(out.Len())/lines, float64(raw)/float64(out.Len()))
		}
	}
}
