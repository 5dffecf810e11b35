package follow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// kubelet talks to the kubelet of our node through the node proxy:
// https://<node-proxy>/api/v1/nodes/<node>/proxy/{pods,containerLogs/...}.
type kubelet struct {
	base      *url.URL // .../api/v1/nodes/<node>/proxy
	tokenFile string
	caFile    string

	mu     sync.Mutex
	client *http.Client
	caMod  time.Time // modification time of the CA file the client trusts
	caSize int64
}

func newKubelet(nodeProxy *url.URL, node, tokenFile, caFile string) *kubelet {
	base := *nodeProxy
	base.Path = strings.TrimSuffix(base.Path, "/") + "/api/v1/nodes/" + node + "/proxy"
	base.RawPath = ""
	return &kubelet{base: &base, tokenFile: tokenFile, caFile: caFile}
}

// httpClient is the client for the CA file as it is now: a CA that is
// replaced (rotated) is picked up by the next request.
func (k *kubelet) httpClient() (*http.Client, error) {
	info, err := os.Stat(k.caFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA file %s: %w (is the node proxy's CA mounted there? set --ca-file)", k.caFile, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.client != nil && info.ModTime().Equal(k.caMod) && info.Size() == k.caSize {
		return k.client, nil
	}
	pem, err := os.ReadFile(k.caFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA file %s: %w", k.caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate: give the node proxy's CA bundle with --ca-file", k.caFile)
	}
	if k.client != nil {
		k.client.CloseIdleConnections()
	}
	// HTTP/1.1 only: one connection per stream keeps what waits unread in
	// the kernel's socket buffer, where HTTP/2 would buffer up to a 4 MiB
	// window per stream in this process.
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		// No ResponseHeaderTimeout: the kubelet sends the headers of a log
		// stream with its first line, which a quiet container may write
		// hours later. /pods has a deadline of its own.
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	k.client = &http.Client{Transport: tr}
	k.caMod, k.caSize = info.ModTime(), info.Size()
	return k.client, nil
}

// token is the projected service account token, read for every request:
// the kubelet rewrites the file before the token expires.
func (k *kubelet) token() (string, error) {
	b, err := os.ReadFile(k.tokenFile)
	if err != nil {
		return "", fmt.Errorf("read the token file %s: %w (is the projected service account token mounted there? set --token-file)", k.tokenFile, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("the token file %s is empty", k.tokenFile)
	}
	return t, nil
}

// httpError is an answer other than 200.
type httpError struct {
	code int
	msg  string // the start of the body, for the log
	url  string
	// retryAfter is the Retry-After of a 429 or 503, 0 when absent.
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	return fmt.Sprintf("GET %s: %d %s: %s", e.url, e.code, http.StatusText(e.code), e.msg)
}

// refused says whether the node proxy refused us, which retrying soon
// cannot fix: 401, 403 (RBAC, or not our own pod), 429.
func refused(err error) (*httpError, bool) {
	var he *httpError
	if errors.As(err, &he) && (he.code == http.StatusUnauthorized || he.code == http.StatusForbidden || he.code == http.StatusTooManyRequests) {
		return he, true
	}
	return nil, false
}

// advice says what to do about a refusal.
func advice(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return "the node proxy does not accept the token: check --token-file (a projected service account token with the node proxy's audience) and that the node proxy can review tokens"
	case http.StatusForbidden:
		return "the node proxy refuses this pod: it serves a pod's own logs only; check --node, --namespace, --pod and --pod-uid (from the Downward API) and the node proxy's RBAC"
	case http.StatusTooManyRequests:
		return "the node proxy is rate limiting this pod: retrying slowly"
	}
	return ""
}

// get sends a GET to path under the kubelet proxy with query (raw, as
// logOptions.query writes it), and returns the response of a 200; any
// other answer is an *httpError.
func (k *kubelet) get(ctx context.Context, path string, query string) (*http.Response, error) {
	client, err := k.httpClient()
	if err != nil {
		return nil, err
	}
	tok, err := k.token()
	if err != nil {
		return nil, err
	}
	u := *k.base
	u.Path += path
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	he := &httpError{code: resp.StatusCode, msg: strings.TrimSpace(string(b)), url: u.Redacted()}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		he.retryAfter = time.Duration(s) * time.Second
	}
	return nil, he
}

// pods is the kubelet's pod list (our pod only, through the node proxy).
func (k *kubelet) pods(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := k.get(ctx, "/pods", "")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	// A pod list of one pod; the bound keeps a broken answer from taking memory.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("read /pods: %w", err)
	}
	return b, nil
}

// logOptions are the containerLogs query the follower sends.
type logOptions struct {
	previous bool
	since    int64 // unix ns; 0: from the start
}

// query is written out, not encoded: the node proxy checks the raw query
// and refuses any %-escape (url.Values would write the time's colons as
// %3A), and the characters of an RFC 3339 time in UTC (digits, -, :, .,
// T, Z) need none in a query (RFC 3986).
func (o logOptions) query() string {
	q := "follow=true&timestamps=true"
	if o.since != 0 {
		q += "&sinceTime=" + time.Unix(0, o.since).UTC().Format(time.RFC3339Nano)
	}
	if o.previous {
		q += "&previous=true"
	}
	return q
}

// containerLogs opens the log of a container of our pod.
func (k *kubelet) containerLogs(ctx context.Context, namespace, pod, container string, o logOptions) (*http.Response, error) {
	return k.get(ctx, "/containerLogs/"+namespace+"/"+pod+"/"+container, o.query())
}
