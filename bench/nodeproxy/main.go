// Command nodeproxy measures the kubelet stats proxy against direct calls to
// the same upstream, in one process so that both see the same machine:
//
//   - scrapes per second through the proxy vs straight to the upstream (the
//     stand-in for the API server's nodes/proxy), both over TLS with
//     keep-alive, with the same number of concurrent collectors;
//   - upstream calls and TokenReviews per scrape once the caches are warm;
//   - heap held with 10,000 distinct callers cached (reviews, rate limiters
//     and the pod index);
//   - the proxy's CPU time per followed container (containerLogs
//     follow=true at 1,000 lines/s of 100 bytes), through the proxy vs
//     straight to the upstream (follow.go).
//
// `make bench-nodeproxy` runs it.
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/nodeproxy/podindex"
)

func main() {
	duration := flag.Duration("duration", 2*time.Second, "length of each measured round")
	rounds := flag.Int("rounds", 5, "alternating direct/proxy rounds (the median ratio is reported)")
	collectors := flag.Int("collectors", 16, "concurrent collectors (distinct pods, nodes and tokens)")
	latency := flag.Duration("kubelet-latency", 0, "time the kubelet takes per answer; 0 = pure CPU cost")
	callers := flag.Int("callers", 10000, "distinct callers for the memory figure")
	upstream := flag.String("upstream", "apiserver", "what answers: apiserver (a reverse proxy to a kubelet, as nodes/proxy is) or static (answers by itself: the proxy's cost at its most visible)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured rounds to this file")
	flag.DurationVar(&followCfg.duration, "follow-duration", 10*time.Second, "length of each follow round (0: no follow rows)")
	flag.IntVar(&followCfg.rounds, "follow-rounds", 3, "paired direct/proxy follow rounds")
	flag.IntVar(&followCfg.followers, "followers", 8, "concurrent followed containers (distinct pods)")
	flag.IntVar(&followCfg.linesPerSec, "follow-lines", 1000, "lines per second each followed container writes")
	flag.IntVar(&followCfg.lineBytes, "follow-line-bytes", 100, "bytes per log line, newline and timestamp included")
	followUpstream := flag.String("follow-upstream", "modelled", "modelled: the follow rows after the scrape rows, upstream as -upstream; real: only the follow rows, with a real kube-apiserver (needs root and the Kubernetes binaries, as the cluster tests)")
	flag.Parse()
	if *followUpstream == "real" {
		os.Exit(followRealMain())
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-nodeproxy:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	upstreamKind = *upstream
	if err := run(*duration, *rounds, *collectors, *latency, *callers); err != nil {
		fmt.Fprintln(os.Stderr, "bench-nodeproxy:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

var upstreamKind string

type counters struct {
	upstream atomic.Int64
	reviews  atomic.Int64
}

func run(duration time.Duration, rounds, collectors int, latency time.Duration, callers int) error {
	ca, err := pkitest.NewCA("bench-ca")
	if err != nil {
		return err
	}
	var n counters
	summary := fargateSummary()

	// The upstream: what the API server answers at nodes/proxy/stats/summary.
	upTLS, err := ca.ServingCert("127.0.0.1")
	if err != nil {
		return err
	}
	// The kubelet: answers the summary.
	kubelet := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/containerLogs/") {
			serveFollow(w, r)
			return
		}
		if latency > 0 {
			time.Sleep(latency)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(summary)
	}))
	kubelet.TLS = &tls.Config{Certificates: []tls.Certificate{upTLS}}
	kubelet.StartTLS()
	defer kubelet.Close()
	kubeletURL, _ := url.Parse(kubelet.URL)

	// The upstream, as the API server's nodes/proxy is: a reverse proxy to
	// the node's kubelet (and nothing of the API server's authentication,
	// authorization, audit or flow control, which would only add to both
	// paths). With -upstream static it answers by itself.
	upstreamHandler := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			_, rest, _ := strings.Cut(pr.In.URL.Path, "/proxy/")
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path = kubeletURL.Scheme, kubeletURL.Host, "/"+rest
			pr.Out.Header.Del("Authorization")
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.upstream.Add(1)
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "no credential", http.StatusUnauthorized)
			return
		}
		if upstreamKind == "static" && !strings.Contains(r.URL.Path, "/containerLogs/") {
			if latency > 0 {
				time.Sleep(latency)
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(summary)
			return
		}
		upstreamHandler.ServeHTTP(w, r)
	}))
	up.EnableHTTP2 = true // as the API server
	up.TLS = &tls.Config{Certificates: []tls.Certificate{upTLS}}
	up.StartTLS()
	defer up.Close()

	// The proxy, with the real authenticator (TokenReview answered in
	// process), the real pod index and the real handler and TLS server.
	nPods := max(collectors, followCfg.followers)
	pods := make([]corev1.Pod, nPods)
	answers := map[string]authnv1.TokenReviewStatus{}
	for i := range nPods {
		pods[i] = benchPod(i)
		answers[token(i)] = reviewStatus(i)
	}
	h, err := newHandler(up.URL, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}}, MaxIdleConnsPerHost: 256}, pods, answers, &n)
	if err != nil {
		return err
	}
	pxTLS, err := ca.ServingCert("127.0.0.1")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := nodeproxy.NewTLSServer(h, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pxTLS, nil }, slog.New(slog.DiscardHandler))
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer func() { _ = srv.Close() }()
	proxyURL := "https://" + ln.Addr().String()

	// Each collector is its own client, as each sidecar is its own process
	// (the kubelet_stats receiver clones http.DefaultTransport).
	clients := make([]*http.Client, collectors)
	for i := range clients {
		clients[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	}
	scrape := func(base string) func(i int) error {
		return func(i int) error {
			req, _ := http.NewRequest("GET", base+"/api/v1/nodes/"+node(i)+"/proxy/stats/summary", nil)
			req.Header.Set("Authorization", "bearer "+token(i))
			resp, err := clients[i].Do(req)
			if err != nil {
				return err
			}
			nb, err := io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || nb != int64(len(summary)) {
				return fmt.Errorf("scrape %s: HTTP %d, %d bytes", base, resp.StatusCode, nb)
			}
			return nil
		}
	}
	direct, proxied := scrape(up.URL), scrape(proxyURL)

	// Warm-up: connections, token reviews, rate limiters.
	if _, err := measure(direct, collectors, 300*time.Millisecond); err != nil {
		return err
	}
	if _, err := measure(proxied, collectors, 300*time.Millisecond); err != nil {
		return err
	}

	// Alternate direct and proxied rounds; each pair gives one ratio, and
	// the median ratio is the figure (the machine is shared and noisy).
	// Wall-clock rates swing with whatever else the machine runs; the CPU
	// time the process spends per scrape (client, proxy and upstream all
	// included) does not, and at saturation the rate is cores / CPU per
	// scrape, so its ratio is the capacity ratio on an idle machine.
	var directRates, proxyRates, ratios, cpuRatios, directCPU, proxyCPU []float64
	var proxyScrapes, upstreamDuringProxy, reviewsDuringProxy int64
	for range rounds {
		c0 := cpuTime()
		d, err := measure(direct, collectors, duration)
		if err != nil {
			return err
		}
		c1 := cpuTime()
		u0, r0 := n.upstream.Load(), n.reviews.Load()
		p, err := measure(proxied, collectors, duration)
		if err != nil {
			return err
		}
		c2 := cpuTime()
		dc, pc := (c1-c0).Seconds()/float64(d), (c2-c1).Seconds()/float64(p)
		directCPU = append(directCPU, dc*1e6)
		proxyCPU = append(proxyCPU, pc*1e6)
		cpuRatios = append(cpuRatios, dc/pc)
		directRates = append(directRates, float64(d)/duration.Seconds())
		proxyRates = append(proxyRates, float64(p)/duration.Seconds())
		ratios = append(ratios, float64(p)/float64(d))
		proxyScrapes += p
		upstreamDuringProxy += n.upstream.Load() - u0
		reviewsDuringProxy += n.reviews.Load() - r0
	}
	var heapMiB float64
	if callers > 0 {
		if heapMiB, err = callersHeap(callers); err != nil {
			return err
		}
	}

	fmt.Printf("nodeproxy benchmark: upstream %s, %d collectors, %d-byte summary, kubelet latency %v, %d paired rounds of %v, GOMAXPROCS=%d\n",
		upstreamKind, collectors, len(summary), latency, rounds, duration, runtime.GOMAXPROCS(0))
	fmt.Println("  protocols: collector -> upstream HTTP/2 (what kubelet_stats negotiates with the API server);")
	fmt.Println("             collector -> proxy HTTP/1.1 and proxy -> upstream HTTP/1.1 (the proxy's own choices)")
	fmt.Printf("  direct to upstream:      %8.0f scrapes/s (median)\n", median(directRates))
	fmt.Printf("  through the proxy:       %8.0f scrapes/s (median)\n", median(proxyRates))
	fmt.Printf("  proxy / direct (wall):   %8.2fx   [rounds: %s]\n", median(ratios), list(ratios))
	fmt.Printf("  CPU per scrape:          %8.0f us direct, %.0f us through the proxy (medians; client, proxy and upstream together)\n", median(directCPU), median(proxyCPU))
	fmt.Printf("  proxy / direct (CPU):    %8.2fx   (goal >= 0.80x) %s   [rounds: %s]\n", median(cpuRatios), verdict(median(cpuRatios) >= 0.8), list(cpuRatios))
	perScrape := float64(upstreamDuringProxy) / float64(proxyScrapes)
	fmt.Printf("  upstream calls / scrape: %8.3f    (goal 1.0)      %s\n", perScrape, verdict(perScrape == 1.0))
	fmt.Printf("  token reviews / scrape:  %8.3f    (after warm-up)\n", float64(reviewsDuringProxy)/float64(proxyScrapes))
	if callers > 0 {
		fmt.Printf("  heap with %d callers cached: %.1f MiB (goal <= 64 MiB) %s\n", callers, heapMiB, verdict(heapMiB <= 64))
	}
	if followCfg.duration > 0 {
		return followBench(ca, up.URL, proxyURL)
	}
	return nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// measure runs scrape from c workers for d and returns the scrapes done.
func measure(scrape func(int) error, c int, d time.Duration) (int64, error) {
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range c {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if err := scrape(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return done.Load(), firstErr
}

func newHandler(upstream string, transport http.RoundTripper, pods []corev1.Pod, answers map[string]authnv1.TokenReviewStatus, n *counters) (*nodeproxy.Handler, error) {
	auth, err := callerauth.New(func(_ context.Context, token string, _ []string) (authnv1.TokenReviewStatus, error) {
		n.reviews.Add(1)
		return answers[token], nil
	}, callerauth.Options{Audience: nodeproxy.DefaultAudience, CacheSize: len(pods) + 100,
		// Measure the caches, not the limits on reviews of unknown tokens
		// (every caller is unknown once).
		ReviewQPS: 1e9, ReviewBurst: 1e6, SourceQPS: 1e9, SourceBurst: 1e6})
	if err != nil {
		return nil, err
	}
	idx, err := podindex.NewStatic(pods)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(upstream)
	return nodeproxy.NewHandler(nodeproxy.Config{
		Upstream:   u,
		Transport:  credTransport{transport},
		Auth:       auth,
		Pods:       idx,
		Rate:       1e9, // measure the proxy, not its limiter
		Burst:      1e6,
		MaxCallers: len(pods) + 100,
	})
}

// credTransport adds the proxy's own credential, as client-go's does.
type credTransport struct{ base http.RoundTripper }

func (c credTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set("Authorization", "Bearer proxy-credential")
	return c.base.RoundTrip(r)
}

// callersHeap is the heap that cached state for n distinct callers holds:
// each caller's TokenReview and rate limiter, and its pod in the index.
func callersHeap(n int) (float64, error) {
	answers := make(map[string]authnv1.TokenReviewStatus, n)
	tokens := make([]string, n)
	for i := range n {
		tokens[i] = token(i)
		answers[tokens[i]] = reviewStatus(i)
	}
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)

	pods := make([]corev1.Pod, n)
	for i := range n {
		pods[i] = benchPod(i)
	}
	var c counters
	h, err := newHandler("https://apiserver.invalid", answerTransport{}, pods, answers, &c)
	if err != nil {
		return 0, err
	}
	for i := range n {
		req := httptest.NewRequest("GET", "/api/v1/nodes/"+node(i)+"/proxy/stats/summary", nil)
		req.Header.Set("Authorization", "Bearer "+tokens[i])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			return 0, fmt.Errorf("caller %d: HTTP %d %s", i, w.Code, w.Body.String())
		}
	}
	if c.reviews.Load() != int64(n) {
		return 0, fmt.Errorf("%d reviews for %d callers", c.reviews.Load(), n)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(h)
	runtime.KeepAlive(answers)
	runtime.KeepAlive(tokens)
	return float64(after.HeapAlloc-base.HeapAlloc) / (1 << 20), nil
}

// answerTransport answers every request in memory.
type answerTransport struct{}

func (answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(io.LimitReader(zeroReader{}, 0)), Request: r, ContentLength: 0}, nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { return 0, io.EOF }

func node(i int) string {
	return fmt.Sprintf("fargate-ip-10-0-%d-%d.eu-west-1.compute.internal", i/250, i%250)
}

// tokenExp is when every bench token expires: after any run.
var tokenExp = time.Now().Add(24 * time.Hour).Unix()

// token is shaped like a projected service account token of pod i (about
// 1 KiB: a JSON header, the API server's claims, a 256-byte RS256
// signature), so that the shape check and hashing cost what they cost in
// production; only the in-process review knows it.
func token(i int) string {
	enc := base64.RawURLEncoding.EncodeToString
	p := benchPod(i)
	claims := fmt.Sprintf(`{"aud":[%q],"exp":%d,"iat":%d,"iss":"https://kubernetes.default.svc.cluster.local","jti":"%08d-0000-4000-8000-000000000000","kubernetes.io":{"namespace":%q,"node":{"name":%q,"uid":"node-uid-%d"},"pod":{"name":%q,"uid":%q},"serviceaccount":{"name":"app","uid":"sa-uid-%d"}},"nbf":%d,"sub":"system:serviceaccount:%s:app"}`,
		nodeproxy.DefaultAudience, tokenExp, tokenExp-3600, i, p.Namespace, p.Spec.NodeName, i, p.Name, p.UID, i, tokenExp-3600, p.Namespace)
	sig := make([]byte, 256)
	for j := range sig {
		sig[j] = byte(i + j)
	}
	return enc([]byte(`{"alg":"RS256","kid":"bench-key-1"}`)) + "." + enc([]byte(claims)) + "." + enc(sig)
}

func benchPod(i int) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("app-%d-7d9f8c6b5-x2k4p", i), UID: types.UID(fmt.Sprintf("6c1b3a9e-0000-4000-8000-%012d", i))},
		Spec: corev1.PodSpec{NodeName: node(i), ServiceAccountName: "app",
			Containers: []corev1.Container{{Name: "app"}, {Name: "otel-collector"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func reviewStatus(i int) authnv1.TokenReviewStatus {
	p := benchPod(i)
	return authnv1.TokenReviewStatus{
		Authenticated: true,
		Audiences:     []string{nodeproxy.DefaultAudience},
		User: authnv1.UserInfo{
			Username: "system:serviceaccount:ns:app",
			UID:      fmt.Sprintf("sa-uid-%d", i),
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"},
			Extra: map[string]authnv1.ExtraValue{
				callerauth.ExtraPodName:  {p.Name},
				callerauth.ExtraPodUID:   {string(p.UID)},
				callerauth.ExtraNodeName: {p.Spec.NodeName},
			},
		},
	}
}

// fargateSummary is a /stats/summary of a Fargate node with one pod of two
// containers, in the kubelet's shape and size.
func fargateSummary() []byte {
	now := time.Now().UTC().Format(time.RFC3339)
	cpu := map[string]any{"time": now, "usageNanoCores": 2813456, "usageCoreNanoSeconds": 18273645123}
	mem := map[string]any{"time": now, "availableBytes": 1824563200, "usageBytes": 123456789, "workingSetBytes": 98765432, "rssBytes": 65432100, "pageFaults": 123456, "majorPageFaults": 12}
	fs := map[string]any{"time": now, "availableBytes": 17179869184, "capacityBytes": 21474836480, "usedBytes": 1234567, "inodesFree": 1234567, "inodes": 1310720, "inodesUsed": 123}
	container := func(name string) map[string]any {
		return map[string]any{"name": name, "startTime": now, "cpu": cpu, "memory": mem, "rootfs": fs, "logs": fs}
	}
	net := map[string]any{"time": now, "name": "eth0", "rxBytes": 123456789, "rxErrors": 0, "txBytes": 98765432, "txErrors": 0,
		"interfaces": []any{map[string]any{"name": "eth0", "rxBytes": 123456789, "rxErrors": 0, "txBytes": 98765432, "txErrors": 0}}}
	s := map[string]any{
		"node": map[string]any{
			"nodeName": node(0), "startTime": now, "cpu": cpu, "memory": mem, "network": net, "fs": fs,
			"runtime":          map[string]any{"imageFs": fs, "containerFs": fs},
			"rlimit":           map[string]any{"time": now, "maxpid": 4194304, "curproc": 312},
			"systemContainers": []any{container("kubelet"), container("runtime"), container("pods")},
		},
		"pods": []any{map[string]any{
			"podRef":            map[string]any{"name": "app-0-7d9f8c6b5-x2k4p", "namespace": "ns", "uid": "6c1b3a9e-0000-4000-8000-000000000000"},
			"startTime":         now,
			"containers":        []any{container("app"), container("otel-collector")},
			"cpu":               cpu,
			"memory":            mem,
			"network":           net,
			"volume":            []any{map[string]any{"time": now, "name": "fargate-otel-logs", "availableBytes": 1, "capacityBytes": 2, "usedBytes": 3, "inodesFree": 4, "inodes": 5, "inodesUsed": 6}},
			"ephemeral-storage": fs,
			"process_stats":     map[string]any{"process_count": 7},
		}},
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	return b
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
