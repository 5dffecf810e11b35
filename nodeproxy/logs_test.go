package nodeproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

const logsOf = "/api/v1/nodes/node-a/proxy/containerLogs/ns/a/"

// open starts a request and returns the answer with its body unread.
func (f *fixture) open(t *testing.T, base, target, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", base, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestForwardsOwnContainerLogs(t *testing.T) {
	f := newFixture(t, nil)
	f.up.logLines = 3
	for _, c := range []string{"app", "init"} {
		code, body, hdr := f.do(t, "GET", logsOf+c+"?timestamps=true&tailLines=3", "tok-a", map[string]string{"Accept-Encoding": "gzip"})
		if want := "0 " + c + "\n1 " + c + "\n2 " + c + "\n"; code != 200 || body != want {
			t.Fatalf("%s: got %d %q, want the kubelet's body %q", c, code, body, want)
		}
		if hdr.Get("Content-Type") != "text/plain" || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("headers %v", hdr)
		}
		last := f.up.last
		if got := last.URL.RequestURI(); got != logsOf+c+"?timestamps=true&tailLines=3" {
			t.Fatalf("upstream got %s, want the validated target unchanged", got)
		}
		if last.Header.Get("Accept-Encoding") != "identity" {
			t.Errorf("upstream Accept-Encoding %q, want identity (the stream must not wait for gzip blocks)", last.Header.Get("Accept-Encoding"))
		}
	}
	if got := f.auth.sources[len(f.auth.sources)-1]; got != "127.0.0.1" {
		t.Errorf("the authenticator was told the source %q, want the remote IP", got)
	}
}

// TestFollowStreamsChunkByChunk: each line the kubelet writes reaches the
// caller before the kubelet writes the next one.
func TestFollowStreamsChunkByChunk(t *testing.T) {
	f := newFixture(t, nil)
	f.up.gate = make(chan struct{})
	// The kubelet sends no header before its first line: the answer starts
	// with line 0, however long that takes.
	req, _ := http.NewRequest("GET", f.proxy.URL+logsOf+"app?follow=true", nil)
	req.Header.Set("Authorization", "Bearer tok-a")
	type answer struct {
		resp *http.Response
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		answers <- answer{resp, err}
	}()
	f.up.gate <- struct{}{}
	a := <-answers
	if a.err != nil {
		t.Fatal(a.err)
	}
	resp := a.resp
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 5 {
		if i > 0 {
			f.up.gate <- struct{}{} // the kubelet may write line i
		}
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("%d app\n", i) {
			t.Fatalf("line %d: %q %v", i, line, err)
		}
	}
	if total, pod := f.h.streams.open("uid-a"); total != 1 || pod != 1 {
		t.Fatalf("open streams %d (pod %d), want 1", total, pod)
	}
	_ = resp.Body.Close()
	poll(t, "the stream's slot given back", func() bool { total, _ := f.h.streams.open("uid-a"); return total == 0 })
}

// TestFollowOutlivesTheTimeouts: a follow stream outlives the upstream
// limit and the server's read and write timeouts (all 300 ms here), which
// still cut a request that is not a follow stream.
func TestFollowOutlivesTheTimeouts(t *testing.T) {
	const limit = 300 * time.Millisecond
	f := newFixture(t, func(c *Config) { c.UpstreamTimeout = limit })
	f.up.logEvery = 50 * time.Millisecond
	srv := NewTLSServer(f.h, nil, slog.New(slog.DiscardHandler))
	srv.ReadTimeout, srv.WriteTimeout = limit, limit
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()

	resp := f.open(t, base, logsOf+"app?follow=true&timestamps=true", "tok-a")
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	start := time.Now()
	br := bufio.NewReader(resp.Body)
	for i := 0; time.Since(start) < 6*limit; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("%d app\n", i) {
			t.Fatalf("after %v, line %d: %q %v (the stream was cut)", time.Since(start).Round(time.Millisecond), i, line, err)
		}
	}

	// Not following: the upstream limit cuts the transfer.
	f.up.logLines = 1000
	resp = f.open(t, base, logsOf+"app", "tok-a")
	start = time.Now()
	n, _ := io.Copy(io.Discard, resp.Body)
	if d := time.Since(start); d > 3*limit || n == 0 {
		t.Fatalf("a non-follow read ran %v (%d bytes), want it cut at the %v limit", d, n, limit)
	}
}

func TestFollowStreamLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxFollowStreams = 6; c.ExtraFollowStreamsPerPod = 1 })
	f.up.logEvery = 20 * time.Millisecond
	f.auth.callers["tok-b"] = callerauth.Caller{Namespace: "ns", ServiceAccount: "default", PodName: "b", PodUID: "uid-b"}
	f.pods.pods["ns/b"] = &callerauth.Pod{Namespace: "ns", Name: "b", UID: "uid-b", NodeName: "node-a", ServiceAccount: "default", Containers: []string{"app", "sidecar"}}
	// Pod a has 3 containers: 4 streams (3 + 1).
	var open []*http.Response
	for i := range 4 {
		resp := f.open(t, f.proxy.URL, logsOf+"app?follow=true", "tok-a")
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d of pod a: HTTP %d", i, resp.StatusCode)
		}
		open = append(open, resp)
	}
	resp := f.open(t, f.proxy.URL, logsOf+"app?follow=true", "tok-a")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "already has 4 follow streams open") {
		t.Fatalf("5th stream of pod a: HTTP %d %q (Retry-After %q), want 429 naming the pod's limit", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// A read that does not follow is not a stream.
	f.up.logLines = 1
	if code, body, _ := f.do(t, "GET", logsOf+"app", "tok-a", nil); code != 200 {
		t.Fatalf("non-follow read while at the stream limit: %d %s", code, body)
	}
	// Pod b (the upstream serves only pod a's logs; the limits are what is
	// checked): 2 streams fit in the proxy's 6, the third does not.
	for i := range 2 {
		resp := f.open(t, f.proxy.URL, "/api/v1/nodes/node-a/proxy/containerLogs/ns/b/app?follow=true", "tok-b")
		if resp.StatusCode == 429 {
			t.Fatalf("stream %d of pod b refused", i)
		}
		open = append(open, resp)
	}
	poll(t, "pod b's streams closed by the upstream's 404", func() bool { total, _ := f.h.streams.open(""); return total == 4 })
	f.h.streams.total = 6 // as if pod b's two streams were still open
	resp = f.open(t, f.proxy.URL, "/api/v1/nodes/node-a/proxy/containerLogs/ns/b/app?follow=true", "tok-b")
	body, _ = io.ReadAll(resp.Body)
	f.h.streams.total = 4
	if resp.StatusCode != 429 || !strings.Contains(string(body), "limit of 6 follow streams") {
		t.Fatalf("over the proxy's limit: HTTP %d %q", resp.StatusCode, body)
	}
	for _, r := range open {
		_ = r.Body.Close()
	}
	poll(t, "every slot given back", func() bool { total, _ := f.h.streams.open("uid-a"); return total == 0 })
}

func TestReviewRateLimitAnswers429(t *testing.T) {
	f := newFixture(t, nil)
	f.auth.err = &callerauth.RateLimitError{Global: true, QPS: 50, Burst: 100, RetryAfter: 1500 * time.Millisecond}
	code, body, hdr := f.do(t, "GET", summaryPath, "tok-a", nil)
	if code != 429 || hdr.Get("Retry-After") != "2" || !strings.Contains(body, "at its limit of 50/s") {
		t.Fatalf("got %d %q Retry-After %q, want 429 with Retry-After 2", code, body, hdr.Get("Retry-After"))
	}
}

func TestStreamSlots(t *testing.T) {
	s := newStreamSlots(3)
	r1, err := s.acquire("p", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.acquire("p", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.acquire("p", 2); !errors.Is(err, errPodStreams) {
		t.Fatalf("3rd of pod p: %v, want errPodStreams", err)
	}
	if _, err := s.acquire("q", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.acquire("r", 2); !errors.Is(err, errAllStreams) {
		t.Fatalf("4th in all: %v, want errAllStreams", err)
	}
	r1()
	r1() // twice: given back once
	if total, p := s.open("p"); total != 2 || p != 1 {
		t.Fatalf("after release: %d in all, %d of p", total, p)
	}
}

// poll waits for cond with a deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
