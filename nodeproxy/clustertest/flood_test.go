package clustertest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
)

// The flood proxy's review limits (the defaults are 50/s, burst 100, and
// 1/s, burst 10 per source): low, so that the bound is far below the flood.
const (
	floodQPS, floodBurst       = 20, 40
	floodSrcQPS, floodSrcBurst = 5, 10
	floodTokens                = 10_000
	floodSources               = 8
)

// testTokenFlood runs a second proxy with low review limits and sends it
// 10,000 distinct junk tokens from 8 source addresses: half well-shaped
// forgeries naming a real pod (only a TokenReview can refuse them), half
// malformed in several ways. The real API server counts the TokenReviews it
// answers: at most the global bound. Two accepted callers, who fill the
// proxy's cache of accepted reviews, scrape on through the flood and never
// pay a new review, nor get anything but their stats.
func testTokenFlood(t *testing.T, cp *cluster.ControlPlane, podB *corev1.Pod, tokB string) {
	proxy := installProxy(t, cp,
		"--review-qps", strconv.Itoa(floodQPS), "--review-burst", strconv.Itoa(floodBurst),
		"--review-qps-per-source", strconv.Itoa(floodSrcQPS), "--review-burst-per-source", strconv.Itoa(floodSrcBurst),
		// Room for exactly the two accepted callers, and few refusals:
		// were refusals cached with acceptances, the flood would evict them.
		"--token-cache-size", "2", "--refusal-cache-size", "16",
		"--log-level", "warn") // 10,000 refusals at info would only fill the log
	steady := createPod(t, cp.Client, "shop", "steady", "app", "node-a", nil)
	callers := []struct{ node, token string }{
		{"node-b", tokB},
		{"node-a", podToken(t, cp.Client, steady, nodeproxy.DefaultAudience)},
	}
	for _, c := range callers {
		if code, body := proxy.get(t, summaryPath(c.node), c.token); code != 200 {
			t.Fatalf("warm-up of a caller on %s: HTTP %d %s", c.node, code, body)
		}
	}
	accepted := `fargate_otel_nodeproxy_token_reviews_sent_total{result="accepted"}`
	accepted0 := proxy.metricValue(t, accepted)
	malformed0 := proxy.metricValue(t, `fargate_otel_nodeproxy_tokens_unreviewed_total{reason="malformed"}`)
	reviews0 := apiServerTokenReviews(t, cp)

	var (
		next                                  atomic.Int64
		malformed, reviewed, limited, accepts atomic.Int64
		callerScrapes                         atomic.Int64
		mu                                    sync.Mutex
		failures                              []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range floodSources {
		client := sourceClient(t, cp, fmt.Sprintf("127.0.0.%d", 10+w))
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= floodTokens {
					return
				}
				code, hdr, body, err := rawGet(client, proxy.url+summaryPath("node-a"), junkToken(int(i), podB))
				switch {
				case err != nil:
					fail("junk %d: %v", i, err)
				case code == 401 && strings.Contains(body, "malformed token"):
					malformed.Add(1)
				case code == 401:
					reviewed.Add(1)
				case code == 429 && hdr.Get("Retry-After") != "":
					limited.Add(1)
				case code == 200:
					accepts.Add(1)
					fail("junk token %d was accepted", i)
				default:
					fail("junk %d: HTTP %d %s", i, code, body)
				}
				if i%250 == 0 {
					c := callers[int(i/250)%len(callers)]
					code, _, body, err := rawGet(proxy.client, proxy.url+summaryPath(c.node), c.token)
					if err != nil || code != 200 {
						fail("accepted caller on %s during the flood: HTTP %d %s %v", c.node, code, body, err)
					}
					callerScrapes.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, f := range failures {
		t.Error(f)
	}

	reviews := apiServerTokenReviews(t, cp) - reviews0
	bound := floodBurst + floodQPS*elapsed.Seconds()
	perSourceBound := floodSources * (floodSrcBurst + floodSrcQPS*elapsed.Seconds())
	t.Logf("%d junk tokens from %d sources in %v (%.0f/s): %d refused by shape, %d reviewed and refused, %d rate-limited (429); "+
		"TokenReviews at the API server: %.0f (global bound %.0f, per-source bound %.0f); %d scrapes of accepted callers, all 200",
		floodTokens, floodSources, elapsed.Round(time.Millisecond), floodTokens/elapsed.Seconds(), malformed.Load(), reviewed.Load(), limited.Load(),
		reviews, bound, perSourceBound, callerScrapes.Load())
	if reviews > bound+1 { // +1: the bucket's last fraction
		t.Errorf("the flood cost %.0f TokenReviews, more than the bound %.0f", reviews, bound)
	}
	if int64(reviews) < reviewed.Load() {
		t.Errorf("the API server counted %.0f TokenReviews, fewer than the %d tokens it refused: the count is wrong", reviews, reviewed.Load())
	}
	if malformed.Load() != floodTokens/2 {
		t.Errorf("%d refused by their shape, want the %d malformed ones", malformed.Load(), floodTokens/2)
	}
	if limited.Load() == 0 {
		t.Error("no request was rate-limited: the flood did not test the limit")
	}
	if d := proxy.metricValue(t, accepted) - accepted0; d != 0 {
		t.Errorf("%v accepted TokenReviews during the flood: an accepted caller paid a new review", d)
	}
	if d := proxy.metricValue(t, `fargate_otel_nodeproxy_tokens_unreviewed_total{reason="malformed"}`) - malformed0; d != floodTokens/2 {
		t.Errorf("the proxy counted %v malformed tokens, want %d", d, floodTokens/2)
	}
	// And after it, the callers are still cached.
	for _, c := range callers {
		if code, body := proxy.get(t, summaryPath(c.node), c.token); code != 200 {
			t.Errorf("caller on %s after the flood: HTTP %d %s", c.node, code, body)
		}
	}
	if d := proxy.metricValue(t, accepted) - accepted0; d != 0 {
		t.Errorf("%v accepted TokenReviews after the flood", d)
	}
}

// junkToken is the i-th token of the flood: even ones are forgeries shaped
// exactly like the API server's tokens for pod b (claims, audience, expiry)
// with a random signature; odd ones are malformed.
func junkToken(i int, pod *corev1.Pod) string {
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now().Unix()
	header := enc([]byte(`{"alg":"RS256","kid":"forged"}`))
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	if i%2 == 0 {
		claims := fmt.Sprintf(`{"aud":[%q],"exp":%d,"iat":%d,"iss":%q,"jti":"junk-%d","kubernetes.io":{"namespace":%q,"pod":{"name":%q,"uid":%q},"serviceaccount":{"name":%q,"uid":"x"}},"nbf":%d,"sub":"system:serviceaccount:%s:%s"}`,
			nodeproxy.DefaultAudience, now+3600, now, cluster.ServiceAccountIssuer, i, pod.Namespace, pod.Name, pod.UID, pod.Spec.ServiceAccountName, now, pod.Namespace, pod.Spec.ServiceAccountName)
		return header + "." + enc([]byte(claims)) + "." + enc(sig)
	}
	switch i % 10 {
	case 1:
		return fmt.Sprintf("opaque-junk-%d-%x", i, sig[:16])
	case 3: // the API server's audience
		return header + "." + enc([]byte(fmt.Sprintf(`{"aud":[%q],"exp":%d,"jti":"%d","kubernetes.io":{"namespace":"shop","pod":{"name":"b","uid":"u"}}}`, cluster.ServiceAccountIssuer, now+3600, i))) + "." + enc(sig)
	case 5: // expired
		return header + "." + enc([]byte(fmt.Sprintf(`{"aud":[%q],"exp":%d,"jti":"%d","kubernetes.io":{"namespace":"shop","pod":{"name":"b","uid":"u"}}}`, nodeproxy.DefaultAudience, now-60, i))) + "." + enc(sig)
	case 7: // alg none
		return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(fmt.Sprintf(`{"aud":[%q],"exp":%d,"jti":"%d"}`, nodeproxy.DefaultAudience, now+3600, i))) + "." + enc(sig)
	default: // not bound to a pod
		return header + "." + enc([]byte(fmt.Sprintf(`{"aud":[%q],"exp":%d,"jti":"%d","kubernetes.io":{"namespace":"shop"}}`, nodeproxy.DefaultAudience, now+3600, i))) + "." + enc(sig)
	}
}

// sourceClient connects to the proxy from local address ip (a loopback
// address of the namespace), so that the proxy sees a source of its own.
func sourceClient(t *testing.T, cp *cluster.ControlPlane, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: cp.CA.Pool(), ServerName: proxyHost},
		MaxIdleConnsPerHost: 4,
	}}
}

func rawGet(c *http.Client, url, token string) (int, http.Header, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, string(b), err
}

// apiServerTokenReviews is the number of TokenReview requests the API server
// has answered, from its own metrics (apiserver_request_total).
func apiServerTokenReviews(t *testing.T, cp *cluster.ControlPlane) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := cp.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("API server metrics: %v", err)
	}
	var n float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="tokenreviews"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q", line)
		}
		n += v
		found = true
	}
	if !found {
		t.Fatal("the API server reports no apiserver_request_total for tokenreviews: the count would prove nothing")
	}
	return n
}
