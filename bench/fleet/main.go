// Command fleet measures one fleet server replica with simulated agents:
// real opamp-go WebSocket clients over TLS on loopback (fleet/fleettest),
// all in this process, against the server in a process of its own (this
// binary re-executed), so that its RSS and CPU are its own:
//
//   - server RSS per agent, and CPU per agent heartbeat in a steady state;
//   - time for a change of the live settings to reach 50 %, 99 % and 100 %
//     of the agents;
//   - time until every agent is back after the server is killed and
//     started again.
//
// Token reviews are answered by a stand-in for the API server (the real
// callerauth with its cache in front of it): the bench measures the fleet
// server, not the API server. Each run after the first is also printed as
// ratios against the first. `make bench-fleet` runs it.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/fargate-otel/fargate-otel/fleet/fleettest"
	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func main() {
	if os.Getenv(envRole) == "server" {
		if err := serve(); err != nil {
			log.Fatal(err)
		}
		return
	}
	agentsFlag := flag.String("agents", "1000,5000", "agents per run, comma-separated")
	heartbeat := flag.Duration("heartbeat", 5*time.Second, "agents' heartbeat interval (the protocol's is 30s; shorter gives more heartbeats to measure)")
	steady := flag.Duration("steady", 20*time.Second, "steady-state window measured")
	flag.DurationVar(&connectWait, "connect-wait", 2*time.Minute, "how long every agent has to connect")
	flag.Parse()
	raiseNoFile()
	var runs []result
	for _, s := range strings.Split(*agentsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("-agents: %q is not a number of agents", s)
		}
		r, err := run(n, *heartbeat, *steady)
		if err != nil {
			log.Fatalf("%d agents: %v", n, err)
		}
		r.print()
		if len(runs) > 0 {
			ref := runs[0]
			fmt.Printf("  ratios to the %d-agent run: agents x%.1f, server RSS x%.2f, RSS per agent x%.2f, CPU per heartbeat x%.2f, 99%% reached x%.2f, all back x%.2f\n",
				ref.agents, float64(r.agents)/float64(ref.agents), float64(r.rssLoaded)/float64(ref.rssLoaded),
				r.rssPerAgent()/ref.rssPerAgent(), float64(r.cpuPerHeartbeat)/float64(ref.cpuPerHeartbeat),
				r.p99.Seconds()/ref.p99.Seconds(), r.back.Seconds()/ref.back.Seconds())
		}
		runs = append(runs, r)
	}
	last := runs[len(runs)-1]
	fmt.Printf("goals at %d agents: RSS %.0f MiB (goal < 512 MiB: %s), change at 99%% in %v (goal < 5s: %s), all back in %v (goal < 60s: %s)\n",
		last.agents, mib(last.rssLoaded), verdict(mib(last.rssLoaded) < 512), last.p99.Round(time.Millisecond), verdict(last.p99 < 5*time.Second),
		last.back.Round(time.Millisecond), verdict(last.back < 60*time.Second))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// raiseNoFile lifts the open files limit to its hard maximum: every agent
// holds a socket here and one in the server.
func raiseNoFile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			log.Printf("cannot raise the open files limit (%d): %v", l.Cur, err)
		}
	}
}

type result struct {
	agents             int
	rssIdle, rssLoaded int64
	cpuPerHeartbeat    time.Duration
	heartbeats         float64
	connectTime        time.Duration
	p50, p99, p100     time.Duration
	back               time.Duration
}

func (r result) rssPerAgent() float64 { return float64(r.rssLoaded-r.rssIdle) / float64(r.agents) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r result) print() {
	fmt.Printf("%d agents on one replica:\n", r.agents)
	fmt.Printf("  connected in %v; server RSS %.1f MiB idle, %.1f MiB with them: %.1f KiB per agent\n",
		r.connectTime.Round(time.Millisecond), mib(r.rssIdle), mib(r.rssLoaded), r.rssPerAgent()/1024)
	fmt.Printf("  steady state: %.0f heartbeats/s, server CPU %v per heartbeat\n", r.heartbeats, r.cpuPerHeartbeat)
	fmt.Printf("  live settings change reached 50%% in %v, 99%% in %v, 100%% in %v\n",
		r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.p100.Round(time.Millisecond))
	fmt.Printf("  server killed and started again: all agents back in %v\n", r.back.Round(time.Millisecond))
}

// serverProc is the server process.
type serverProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startServer(dir, addr string) (*serverProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envRole+"=server", envListen+"="+addr,
		envCert+"="+filepath.Join(dir, "tls.crt"), envKey+"="+filepath.Join(dir, "tls.key"), "GOMAXPROCS=2")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the server did not start: %q: %w", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &serverProc{cmd: cmd, stdin: stdin}, nil
}

func (s *serverProc) kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// stat is the process's RSS (bytes) and CPU time used.
func (s *serverProc) stat() (int64, time.Duration) {
	pid := s.cmd.Process.Pid
	var rss int64
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				rss = kb << 10
			}
		}
	}
	var cpu time.Duration
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
		}
	}
	return rss, cpu
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

func run(n int, heartbeat, steady time.Duration) (result, error) {
	res := result{agents: n}
	dir, err := os.MkdirTemp("", "fleet-bench")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ca, err := pkitest.NewCA("fleet bench CA")
	if err != nil {
		return res, err
	}
	kp, err := ca.Issue(pkitest.CertSpec{CommonName: "fargate-otel-fleet.fargate-otel.svc", Hosts: []string{"fargate-otel-fleet.fargate-otel.svc"}, Server: true})
	if err != nil {
		return res, err
	}
	if err := kp.WriteFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		return res, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	srv, err := startServer(dir, addr)
	if err != nil {
		return res, err
	}
	defer func() { srv.kill() }()
	time.Sleep(time.Second) // let the fresh process settle before the idle figure
	res.rssIdle, _ = srv.stat()

	// The agents, and when each got which live settings.
	var connected atomic.Int64
	var mu sync.Mutex
	gotAt := make([]map[string]time.Time, n)
	agents := make([]*fleettest.Agent, n)
	connects := make([]atomic.Int64, n)
	t0 := time.Now()
	for i := range n {
		uid := uuid.NewString()
		ns, pod := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("pod-%d", i)
		token := fleettest.ProjectedToken(ns, pod, uid)
		gotAt[i] = map[string]time.Time{}
		a, err := fleettest.Start(context.Background(), fleettest.AgentOptions{
			URL: "wss://" + addr + "/v1/opamp", TLS: &tls.Config{RootCAs: pool, ServerName: "fargate-otel-fleet.fargate-otel.svc", MinVersion: tls.VersionTLS12},
			Token: func() string { return token },
			UID:   uid, Namespace: ns, Pod: pod, Node: "fargate-" + pod, Version: "0.1.0", InjectorVersion: "0.1.0",
			ExportersSource: "cluster", ConfigHash: "b0075742a5e1d00d", BootstrapHash: "b0075742a5e1d00d", Healthy: true,
			EffectiveConfig: benchEffectiveConfig, Heartbeat: heartbeat, Pace: true,
			OnConnect: func() {
				if connects[i].Add(1) == 1 {
					connected.Add(1)
				}
			},
			OnConfig: func(hash []byte) {
				mu.Lock()
				if _, ok := gotAt[i][string(hash)]; !ok {
					gotAt[i][string(hash)] = time.Now()
				}
				mu.Unlock()
			},
		})
		if err != nil {
			return res, err
		}
		agents[i] = a
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // a rollout, not one instant
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(func() { _ = a.Stop(ctx) })
		}
		wg.Wait()
	}()
	if err := waitFor(connectWait, func() bool { return connected.Load() == int64(n) }); err != nil {
		var why []string
		for _, a := range agents {
			if errs := a.ConnectErrors(); !a.Connected() && len(errs) > 0 {
				why = append(why, errs[len(errs)-1])
				break
			}
		}
		return res, fmt.Errorf("only %d of %d agents connected: %w (an agent's last connect error: %q)", connected.Load(), n, err, why)
	}
	// Every agent has its first live settings.
	if err := waitFor(2*time.Minute, func() bool {
		return countWith(&mu, gotAt, func(m map[string]time.Time) bool { return len(m) >= 1 }) == n
	}); err != nil {
		return res, fmt.Errorf("first live settings: %w", err)
	}
	res.connectTime = time.Since(t0)

	// Steady state: heartbeats only.
	time.Sleep(heartbeat)
	_, cpu0 := srv.stat()
	time.Sleep(steady)
	rss, cpu1 := srv.stat()
	res.rssLoaded = rss
	res.heartbeats = float64(n) / heartbeat.Seconds()
	res.cpuPerHeartbeat = time.Duration(float64(cpu1-cpu0) / (res.heartbeats * steady.Seconds()))

	// A change of the live settings.
	want := overridesHash("debug")
	tc := time.Now()
	if _, err := fmt.Fprintln(srv.stdin, "logLevel debug"); err != nil {
		return res, err
	}
	if err := waitFor(time.Minute, func() bool {
		return countWith(&mu, gotAt, func(m map[string]time.Time) bool { _, ok := m[want]; return ok }) == n
	}); err != nil {
		return res, fmt.Errorf("the change reached %d of %d agents: %w", countWith(&mu, gotAt, func(m map[string]time.Time) bool { _, ok := m[want]; return ok }), n, err)
	}
	var lat []time.Duration
	mu.Lock()
	for _, m := range gotAt {
		lat = append(lat, m[want].Sub(tc))
	}
	mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.p50, res.p99, res.p100 = lat[n/2], lat[(n*99+99)/100-1], lat[n-1]

	// Restart: kill the server, start a new one on the same address.
	before := make([]int64, n)
	for i := range connects {
		before[i] = connects[i].Load()
	}
	srv.kill()
	tr := time.Now()
	srv, err = startServer(dir, addr)
	if err != nil {
		return res, err
	}
	if err := waitFor(3*time.Minute, func() bool {
		for i := range connects {
			if connects[i].Load() <= before[i] {
				return false
			}
		}
		return true
	}); err != nil {
		return res, fmt.Errorf("after the restart: %w", err)
	}
	res.back = time.Since(tr)
	return res, nil
}

func countWith(mu *sync.Mutex, gotAt []map[string]time.Time, ok func(map[string]time.Time) bool) int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, m := range gotAt {
		if ok(m) {
			n++
		}
	}
	return n
}

func waitFor(d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// overridesHash is the config_hash the server sends for a log level.
func overridesHash(level string) string {
	body, err := sidecarconfig.Overrides{LogLevel: level}.Encode()
	if err != nil {
		log.Fatal(err)
	}
	return string(sha256Sum(body))
}

// benchEffectiveConfig is about the size of a real rendered config.
var benchEffectiveConfig = func() string {
	c, err := sidecarconfig.Render(sidecarconfig.Default())
	if err != nil {
		log.Fatal(err)
	}
	return string(c)
}()

// connectWait bounds the wait for every agent to connect.
var connectWait = 2 * time.Minute
