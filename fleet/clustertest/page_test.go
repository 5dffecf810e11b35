package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// chromium is Debian's chromium, which the Makefile installs
// (make test-fleet-page); $FARGATE_OTEL_CHROMIUM overrides it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FARGATE_OTEL_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium: run the test through make (make test-go installs Debian's chromium), or apt-get install chromium: %v", err)
	}
	return p
}

// testPage loads the fleet page of a running replica, whose agents the
// other subtests connected, in a real headless Chromium, and asserts on
// what it shows; the screenshot is kept under _artifacts/fleet/.
func testPage(t *testing.T, r *replica) {
	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1600, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	count := func(sel string) string {
		return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).filter(function (r) { return !r.hidden; }).length`, sel)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
	}
	mustInt := func(n int, err error) int { t.Helper(); must(err); return n }
	mustStr := func(s string, err error) string { t.Helper(); must(err); return s }

	must(chromedp.Do(ctx, chromedp.Navigate(r.client.BaseURL+"/?namespace=shop"), chromedp.WaitVisible(chromedp.CSS("#agents"))))
	total := mustInt(chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tr.agent").length`)))
	// The filter in the URL is applied: shop's three sidecars.
	shopRows := mustInt(chromedp.Run(ctx, chromedp.Evaluate[int](count("tr.agent"))))
	summary := mustStr(chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count-shown"))))
	cart2Health := mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('tr.agent[data-namespace="shop"]')).filter(function (r) { return r.querySelector("td.pod").textContent === "cart-2"; })[0].querySelector("td.health").textContent`)))
	must(chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#unhealthy"))))
	shopUnhealthy := mustInt(chromedp.Run(ctx, chromedp.Evaluate[int](count("tr.agent"))))
	shown := mustInt(chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tr.agent").length`)))
	url := mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`)))
	must(chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#unhealthy"))))
	// The kind column: shop's rows are sidecars; the kind filter (set in
	// the page, as a person does) shows the gateway replica testKind left
	// connected, and goes into the address.
	header := mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#agents thead th")).map(function (h) { return h.textContent; }).join(",")`)))
	shopKinds := mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('tr.agent[data-namespace="shop"] td.kind')).map(function (c) { return c.textContent; }).join(",")`)))
	for _, sel := range []string{`kind", "gateway`, `namespace", "`} {
		mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`(function (id, v) { var s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event("change")); return s.value; })("`+sel+`")`)))
	}
	gatewayRows := mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("tr.agent")).filter(function (r) { return !r.hidden; }).map(function (r) { return r.querySelector("td.pod").textContent + "=" + r.querySelector("td.kind").textContent; }).join(",")`)))
	kindURL := mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`)))
	gatewayCount := mustStr(chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count-gateways"))))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(err)
	if !strings.Contains(header, "namespace,pod,kind,") {
		t.Errorf("the table's columns %q: want a kind column after pod", header)
	}
	if shopKinds != "sidecar,sidecar,sidecar" {
		t.Errorf("shop's kind cells %q, want three sidecars", shopKinds)
	}
	if gatewayRows != "fargate-otel-gateway-5c8d-a=gateway" || gatewayCount != "1" {
		t.Errorf("kind=gateway shows %q (counter %q), want the one gateway replica", gatewayRows, gatewayCount)
	}
	if kindURL != "?kind=gateway" {
		t.Errorf("the address after choosing a kind is %q, want ?kind=gateway", kindURL)
	}
	if url != "?namespace=shop&unhealthy=true" {
		t.Errorf("the page's address after filtering is %q: want the filter in it, so that it can be shared", url)
	}
	if shopRows != 3 || summary != "3" {
		t.Errorf("namespace=shop shows %d rows (counter %q), want shop's 3 sidecars", shopRows, summary)
	}
	if !strings.HasPrefix(cart2Health, "unhealthy") || !strings.Contains(cart2Health, "connection refused") {
		t.Errorf("cart-2's health cell %q: want unhealthy with its error", cart2Health)
	}
	if shopUnhealthy != 1 {
		t.Errorf("shop + unhealthy shows %d rows, want 1 (cart-2)", shopUnhealthy)
	}
	if total < 6 || shown != total {
		t.Errorf("%d rows in the page, %d after filtering (filters hide rows, never drop them)", total, shown)
	}
	dir := filepath.Join(artifacts(), "fleet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fleet-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the fleet page: %s (%d bytes)", path, len(shot))
}

func artifacts() string {
	if root, err := gobuild.RepoRoot(); err == nil {
		return filepath.Join(root, "_artifacts")
	}
	return os.TempDir()
}
