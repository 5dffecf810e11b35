package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

// followCfg is the follow benchmark's setup (flags).
var followCfg struct {
	duration    time.Duration
	rounds      int
	followers   int
	linesPerSec int
	lineBytes   int
}

// serveFollow is the kubelet's containerLogs?follow=true: lineBytes-byte
// lines ("<RFC3339Nano> <text>\n") at linesPerSec, each written and flushed
// on its own as the kubelet's flushwriter does, until the caller goes away.
func serveFollow(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	const tsLen = len("2006-01-02T15:04:05.000000000Z")
	filler := strings.Repeat("x", max(0, followCfg.lineBytes-tsLen-2))
	line := make([]byte, 0, followCfg.lineBytes)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var written int64
	for {
		select {
		case <-r.Context().Done():
			return
		case now := <-tick.C:
			// As many lines as the rate owes by now: a late tick catches up.
			due := int64(now.Sub(start).Seconds() * float64(followCfg.linesPerSec))
			for ; written < due; written++ {
				line = now.UTC().AppendFormat(line[:0], "2006-01-02T15:04:05.000000000Z")
				line = append(line, ' ')
				line = append(line, filler...)
				line = append(line, '\n')
				if _, err := w.Write(line); err != nil {
					return
				}
				fl.Flush()
			}
		}
	}
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// followBench follows followers containers straight from the upstream and
// through the proxy, in alternating rounds, and reports the CPU time the
// process spends per followed container in each; the difference is the
// proxy's own cost.
func followBench(ca *pkitest.CA, upstream, proxy string) error {
	cfg := followCfg
	// HTTP/1.1 on every leg (what the proxy speaks on both sides), so that
	// the only difference between the two paths is the proxy's hop: its
	// TLS server, its handler and its TLS client.
	newClient := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}}}}
	}
	clients := make([]*http.Client, cfg.followers)
	for i := range clients {
		clients[i] = newClient()
	}
	path := func(i int) string {
		return "/api/v1/nodes/" + node(i) + "/proxy/containerLogs/ns/" + benchPod(i).Name + "/app?follow=true&timestamps=true"
	}
	// round follows for d after a warm-up and returns the CPU time and bytes
	// of the measured window.
	round := func(base string, d time.Duration) (time.Duration, int64, error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var bytes atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, cfg.followers)
		for i := range cfg.followers {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+path(i), nil)
			req.Header.Set("Authorization", "Bearer "+token(i))
			wg.Go(func() {
				resp, err := clients[i].Do(req)
				if err != nil {
					errs <- err
					return
				}
				defer func() { _ = resp.Body.Close() }()
				if resp.StatusCode != 200 {
					b, _ := io.ReadAll(resp.Body)
					errs <- fmt.Errorf("follow %s: HTTP %d %s", base, resp.StatusCode, b)
					return
				}
				_, _ = io.Copy(countWriter{&bytes}, resp.Body)
			})
		}
		time.Sleep(500 * time.Millisecond) // connections and streams set up
		b0, c0 := bytes.Load(), cpuTime()
		time.Sleep(d)
		b1, c1 := bytes.Load(), cpuTime()
		cancel()
		wg.Wait()
		select {
		case err := <-errs:
			return 0, 0, err
		default:
		}
		return c1 - c0, b1 - b0, nil
	}

	var directCPU, proxyCPU, ratios, directRate, proxyRate []float64
	for range cfg.rounds {
		dc, db, err := round(upstream, cfg.duration)
		if err != nil {
			return err
		}
		pc, pb, err := round(proxy, cfg.duration)
		if err != nil {
			return err
		}
		per := func(cpu time.Duration) float64 { // ms of CPU per second per container
			return cpu.Seconds() * 1e3 / cfg.duration.Seconds() / float64(cfg.followers)
		}
		lines := func(b int64) float64 {
			return float64(b) / float64(cfg.lineBytes) / cfg.duration.Seconds() / float64(cfg.followers)
		}
		directCPU = append(directCPU, per(dc))
		proxyCPU = append(proxyCPU, per(pc))
		ratios = append(ratios, dc.Seconds()/pc.Seconds())
		directRate = append(directRate, lines(db))
		proxyRate = append(proxyRate, lines(pb))
	}
	own := median(proxyCPU) - median(directCPU)
	perLineUS := own * 1e3 / float64(cfg.linesPerSec)
	fmt.Printf("  follow (containerLogs?follow=true&timestamps=true): %d containers x %d lines/s x %d B, %d paired rounds of %v\n",
		cfg.followers, cfg.linesPerSec, cfg.lineBytes, cfg.rounds, cfg.duration)
	fmt.Println("    the upstream is modelled (a reverse proxy to a kubelet in this process, flushing each chunk as the API")
	fmt.Println("    server's nodes/proxy does), not a real kube-apiserver: the API server's own CPU is not measured here;")
	fmt.Println("    HTTP/1.1 on every leg, so that the proxy's hop is the only difference between the two paths")
	fmt.Printf("  lines/s per container:   %8.0f direct, %.0f through the proxy (medians; goal %d)\n", median(directRate), median(proxyRate), cfg.linesPerSec)
	fmt.Printf("  CPU per followed container: %5.2f ms/s direct, %.2f ms/s through the proxy (client, upstream and kubelet models included)\n",
		median(directCPU), median(proxyCPU))
	fmt.Printf("  the proxy's own CPU per followed container: %.2f ms/s = %.2f%% of a core (%.1f us per line)\n", own, own/10, perLineUS)
	fmt.Printf("  proxy / direct (CPU, follow): %5.2fx   [rounds: %s]\n", median(ratios), list(ratios))
	if median(proxyRate) < 0.95*float64(cfg.linesPerSec) {
		return fmt.Errorf("the followers received %.0f lines/s through the proxy, not the %d written: the figure is not at the rate asked for", median(proxyRate), cfg.linesPerSec)
	}
	return nil
}
