package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy"
)

// upstreamLimit is the proxy's --upstream-timeout in TestProxyAgainstAPIServer
// (30 s in production): a follow stream must outlive it.
const upstreamLimit = 3 * time.Second

// testOwnLogs: a pod with two containers and an init container, on node-a,
// reads its own containers' logs through the proxy, the real API server's
// nodes/proxy and node-a's kubelet; a follow stream outlives the upstream
// limit, line by line as the kubelet writes; other pods' containers are
// refused before anything reaches a kubelet; follow streams per pod are
// bounded.
func testOwnLogs(t *testing.T, cp *cluster.ControlPlane, proxy *runningProxy, kubeletA *kubelet) {
	c := cp.Client
	logger, err := c.CoreV1().Pods("shop").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "logger"},
		Spec: corev1.PodSpec{
			NodeName: "node-a", ServiceAccountName: "app", AutomountServiceAccountToken: ptr.To(false),
			InitContainers: []corev1.Container{{Name: "init", Image: "example.invalid/init:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}, {Name: "sidecar", Image: "example.invalid/sidecar:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := podToken(t, c, logger, nodeproxy.DefaultAudience)
	const prefix = "/api/v1/nodes/node-a/proxy/containerLogs/"

	t.Run("follow outlives the upstream limit", func(t *testing.T) {
		path := prefix + "shop/logger/app?follow=true&timestamps=true"
		opened := time.Now()
		resp := proxy.open(t, path, tok)
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("HTTP %d %s", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("Content-Type %q, want the kubelet's text/plain", ct)
		}
		br := bufio.NewReader(resp.Body)
		var first time.Time
		for i := 0; time.Since(opened) < upstreamLimit+2*time.Second; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("after %v, line %d: %v (the stream was cut)", time.Since(opened).Round(time.Millisecond), i, err)
			}
			ts, text, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			at, perr := time.Parse(time.RFC3339Nano, ts)
			if !ok || perr != nil || text != fmt.Sprintf("line %d of shop/logger/app", i) {
				t.Fatalf("line %d %q: want \"<RFC3339Nano> line %d of shop/logger/app\"", i, line, i)
			}
			if i == 0 {
				first = time.Now()
			}
			// Each line arrives as the kubelet writes it, not in batches.
			if lag := time.Since(at); lag > time.Second {
				t.Fatalf("line %d arrived %v after the kubelet wrote it", i, lag.Round(time.Millisecond))
			}
		}
		if d := time.Since(first); d < upstreamLimit+time.Second {
			t.Fatalf("read for %v only", d)
		}
		if v := proxy.metricValue(t, "fargate_otel_nodeproxy_follow_streams"); v != 1 {
			t.Errorf("follow_streams gauge %v with one stream open", v)
		}
		_ = resp.Body.Close()
		polltest.Until(t, 10*time.Second, "the stream closed upstream", func() error {
			if v := proxy.metricValue(t, "fargate_otel_nodeproxy_follow_streams"); v != 0 {
				return fmt.Errorf("%v streams open", v)
			}
			return nil
		})
		if !containsString(kubeletA.seen(), "GET /containerLogs/shop/logger/app?follow=true&timestamps=true") {
			t.Fatalf("the kubelet was not asked the validated target unchanged: %v", kubeletA.seen())
		}
	})

	t.Run("an init container's log, not following", func(t *testing.T) {
		code, body := proxy.get(t, prefix+"shop/logger/init?tailLines=3&limitBytes=65536", tok)
		if want := "line 0 of shop/logger/init\nline 1 of shop/logger/init\nline 2 of shop/logger/init\n"; code != 200 || body != want {
			t.Fatalf("HTTP %d %q, want %q", code, body, want)
		}
	})

	t.Run("other pods' containers are refused", func(t *testing.T) {
		before := len(kubeletA.seen())
		for path, want := range map[string]int{
			prefix + "shop/a/app?follow=true":                                        403, // another pod on the same node
			prefix + "shop/c/app":                                                    403,
			prefix + "kube-system/logger/app":                                        403, // another namespace, same pod name
			prefix + "shop/logger/debugger":                                          403, // not one of its containers
			"/api/v1/nodes/node-b/proxy/containerLogs/shop/b/app":                    403, // another node
			prefix + "shop/logger/app?follow=true&follow=true":                       404,
			prefix + "shop/logger/app?follow=1":                                      404,
			prefix + "shop/logger/app?sinceSeconds=5":                                404,
			"/api/v1/nodes/node-a/proxy/exec/shop/logger/app?command=id&stdout=true": 404,
			"/api/v1/nodes/node-a/proxy/attach/shop/logger/app?stdout=true":          404,
			"/api/v1/nodes/node-a/proxy/portForward/shop/logger":                     404,
			"/api/v1/nodes/node-a/proxy/run/shop/logger/app":                         404,
		} {
			if code, body := proxy.get(t, path, tok); code != want {
				t.Errorf("%s: HTTP %d %s, want %d", path, code, body, want)
			}
		}
		if after := kubeletA.seen(); len(after) != before {
			t.Fatalf("refused requests reached the kubelet: %v", after[before:])
		}
	})

	t.Run("follow streams per pod are bounded", func(t *testing.T) {
		// 3 containers (init included) + 2.
		for i := range 5 {
			resp := proxy.open(t, prefix+"shop/logger/sidecar?follow=true", tok)
			if resp.StatusCode != 200 {
				t.Fatalf("stream %d: HTTP %d", i, resp.StatusCode)
			}
		}
		resp := proxy.open(t, prefix+"shop/logger/sidecar?follow=true", tok)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "already has 5 follow streams open") {
			t.Fatalf("6th stream: HTTP %d %q (Retry-After %q), want 429", resp.StatusCode, b, resp.Header.Get("Retry-After"))
		}
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
