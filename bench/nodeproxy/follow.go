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

// followPath is one way to follow the containers: where, with which
// client, as whom.
type followPath struct {
	base   string
	client []*http.Client
	token  func(i int) string // "" for none (the client carries credentials)
	node   func(i int) string
}

func (p followPath) url(i int) string {
	return p.base + "/api/v1/nodes/" + p.node(i) + "/proxy/containerLogs/ns/" + benchPod(i).Name + "/app?follow=true&timestamps=true"
}

// meter reads one process's CPU time.
type meter struct {
	name string
	cpu  func() time.Duration
}

// thisProcess is the bench process: followers, kubelet, and whatever else
// runs in it.
var thisProcess = meter{"this process", cpuTime}

// followResult is one round: the CPU time each meter read and the bytes
// received in the measured window.
type followResult struct {
	cpu   []time.Duration
	bytes int64
}

// followRound follows every container along p for d after a warm-up.
func followRound(p followPath, d time.Duration, meters []meter) (followResult, error) {
	cfg := followCfg
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bytes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.followers)
	for i := range cfg.followers {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.url(i), nil)
		if tok := p.token(i); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		wg.Go(func() {
			resp, err := p.client[i].Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				errs <- fmt.Errorf("follow %s: HTTP %d %s", p.url(i), resp.StatusCode, b)
				return
			}
			_, _ = io.Copy(countWriter{&bytes}, resp.Body)
		})
	}
	read := func() []time.Duration {
		v := make([]time.Duration, len(meters))
		for i, m := range meters {
			v[i] = m.cpu()
		}
		return v
	}
	time.Sleep(500 * time.Millisecond) // connections and streams set up
	b0, c0 := bytes.Load(), read()
	time.Sleep(d)
	b1, c1 := bytes.Load(), read()
	cancel()
	wg.Wait()
	select {
	case err := <-errs:
		return followResult{}, err
	default:
	}
	r := followResult{bytes: b1 - b0}
	for i := range meters {
		r.cpu = append(r.cpu, c1[i]-c0[i])
	}
	return r, nil
}

// followBench follows the containers straight from the modelled upstream
// and through the proxy, in alternating rounds, and reports the CPU time the
// process spends per followed container in each; the difference is the
// proxy's own cost.
func followBench(ca *pkitest.CA, upstream, proxy string) error {
	cfg := followCfg
	// HTTP/1.1 on every leg (what the proxy speaks on both sides), so that
	// the only difference between the two paths is the proxy's hop: its
	// TLS server, its handler and its TLS client.
	clients := func() []*http.Client {
		cs := make([]*http.Client, cfg.followers)
		for i := range cs {
			cs[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}}}}
		}
		return cs
	}
	direct := followPath{base: upstream, client: clients(), token: token, node: node}
	proxied := followPath{base: proxy, client: clients(), token: token, node: node}
	fmt.Printf("  follow (containerLogs?follow=true&timestamps=true): %d containers x %d lines/s x %d B, %d paired rounds of %v\n",
		cfg.followers, cfg.linesPerSec, cfg.lineBytes, cfg.rounds, cfg.duration)
	fmt.Println("    the upstream is modelled (a reverse proxy to a kubelet in this process, flushing each chunk as the API")
	fmt.Println("    server's nodes/proxy does), not a real kube-apiserver: its CPU is not measured here (see -follow-upstream")
	fmt.Println("    real); HTTP/1.1 on every leg, so that the proxy's hop is the only difference between the two paths")
	r, err := followRounds(direct, proxied, []meter{thisProcess})
	if err != nil {
		return err
	}
	own := r.cpuProxy[0] - r.cpuDirect[0]
	fmt.Printf("  CPU per followed container: %5.2f ms/s direct, %.2f ms/s through the proxy (followers, kubelet, upstream and proxy in one process)\n",
		r.cpuDirect[0], r.cpuProxy[0])
	fmt.Printf("  the proxy's own CPU per followed container: %.2f ms/s = %.2f%% of a core (%.1f us per line; the difference)\n", own, own/10, own*1e3/float64(cfg.linesPerSec))
	fmt.Printf("  proxy / direct (CPU, follow): %5.2fx   [rounds: %s]\n", median(r.ratios), list(r.ratios))
	return nil
}

// followFigures are medians over the rounds: lines/s per container, and per
// meter the CPU per followed container in ms/s, direct and through the
// proxy; ratios are this process's direct/proxy CPU per round.
type followFigures struct {
	directRate, proxyRate float64
	cpuDirect, cpuProxy   []float64
	ratios                []float64
}

// followRounds alternates direct and proxied rounds and prints the rates.
func followRounds(direct, proxied followPath, meters []meter) (followFigures, error) {
	cfg := followCfg
	per := func(cpu time.Duration) float64 { // ms of CPU per second per container
		return cpu.Seconds() * 1e3 / cfg.duration.Seconds() / float64(cfg.followers)
	}
	lines := func(b int64) float64 {
		return float64(b) / float64(cfg.lineBytes) / cfg.duration.Seconds() / float64(cfg.followers)
	}
	var f followFigures
	var directRate, proxyRate []float64
	directCPU, proxyCPU := make([][]float64, len(meters)), make([][]float64, len(meters))
	for range cfg.rounds {
		d, err := followRound(direct, cfg.duration, meters)
		if err != nil {
			return f, err
		}
		p, err := followRound(proxied, cfg.duration, meters)
		if err != nil {
			return f, err
		}
		for i := range meters {
			directCPU[i] = append(directCPU[i], per(d.cpu[i]))
			proxyCPU[i] = append(proxyCPU[i], per(p.cpu[i]))
		}
		f.ratios = append(f.ratios, d.cpu[0].Seconds()/p.cpu[0].Seconds())
		directRate = append(directRate, lines(d.bytes))
		proxyRate = append(proxyRate, lines(p.bytes))
	}
	f.directRate, f.proxyRate = median(directRate), median(proxyRate)
	for i := range meters {
		f.cpuDirect = append(f.cpuDirect, median(directCPU[i]))
		f.cpuProxy = append(f.cpuProxy, median(proxyCPU[i]))
	}
	fmt.Printf("  lines/s per container:   %8.0f direct, %.0f through the proxy (medians; goal %d)\n", f.directRate, f.proxyRate, cfg.linesPerSec)
	if f.proxyRate < 0.95*float64(cfg.linesPerSec) {
		return f, fmt.Errorf("the followers received %.0f lines/s through the proxy, not the %d written: the figure is not at the rate asked for", f.proxyRate, cfg.linesPerSec)
	}
	return f, nil
}
