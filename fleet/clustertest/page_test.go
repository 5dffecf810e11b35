package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fargate-otel/fargate-otel/fleet/api"
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

	// What the API says as the page is loaded: the page must show the same.
	view := mustFleet(t, r)
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
	cells := pageRows(t, ctx)
	setSelect := func(id, v string) {
		t.Helper()
		mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function (id, v) { var s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event("change")); return s.value; })(%q, %q)`, id, v))))
	}
	// The stale and dropping filters, on every namespace.
	setSelect("namespace", "")
	click := func(id string) { t.Helper(); must(chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#"+id)))) }
	type filtered struct{ shown, url, counter string }
	read := func() filtered {
		t.Helper()
		return filtered{shown: visiblePods(pageRows(t, ctx)), url: mustStr(chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))),
			counter: mustStr(chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count-shown"))))}
	}
	click("stale")
	staleOnly := read()
	click("stale")
	click("dropping")
	droppingOnly := read()
	click("stale")
	staleOrDropping := read()
	click("stale")
	click("dropping")
	staleCount := mustStr(chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count-stale"))))
	droppingCount := mustStr(chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count-dropping"))))
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
	checkCells(t, view, cells)
	wantStale := visiblePods(apiRows(api.Filter{Stale: true}.Apply(view.Agents)))
	if !strings.Contains(","+wantStale+",", ",doc/api-1,") || strings.Contains(wantStale, "shop/") {
		t.Errorf("the API's stale agents %q: want doc/api-1 (another release's collector), none of shop's", wantStale)
	}
	if n := strconv.Itoa(len(api.Filter{Stale: true}.Apply(view.Agents))); staleOnly.shown != wantStale || staleOnly.counter != n || staleCount != n || staleOnly.url != "?stale=true" {
		t.Errorf("stale filter shows %q (shown %q, stale counter %q, address %q), want the API's stale agents %q (%s), address ?stale=true",
			staleOnly.shown, staleOnly.counter, staleCount, staleOnly.url, wantStale, n)
	}
	t.Logf("stale filter: %s; stale or dropping: %s", staleOnly.shown, staleOrDropping.shown)
	// Only cart-0 reported dropped lines (testIdentity).
	if droppingOnly.shown != "shop/cart-0" || droppingOnly.counter != "1" || droppingCount != "1" || droppingOnly.url != "?dropping=true" {
		t.Errorf("dropping filter shows %q (shown %q, dropping counter %q, address %q), want shop/cart-0 alone, address ?dropping=true",
			droppingOnly.shown, droppingOnly.counter, droppingCount, droppingOnly.url)
	}
	wantEither := visiblePods(apiRows(api.Filter{Stale: true, Dropping: true}.Apply(view.Agents)))
	if staleOrDropping.shown != wantEither || !strings.Contains(wantEither, "shop/cart-0") || staleOrDropping.url != "?stale=true&dropping=true" {
		t.Errorf("stale and dropping together show %q (address %q), want either: %q", staleOrDropping.shown, staleOrDropping.url, wantEither)
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

// pageRow is one row of the page's table, as Chromium shows it.
type pageRow struct {
	UID, Namespace, Pod             string
	Version, VersionClass, Injector string
	Hash, HashTitle, Bootstrap      string
	Lines, Drops, Failures          string
	Hidden                          bool
}

func pageRows(t *testing.T, ctx context.Context) []pageRow {
	t.Helper()
	js := `JSON.stringify(Array.from(document.querySelectorAll("tr.agent")).map(function (r) {
		function c(sel) { var e = r.querySelector(sel); return e ? e.textContent : ""; }
		var code = r.querySelector("td.hash > code"), boot = r.querySelector("td.hash div code");
		return {UID: r.dataset.uid, Namespace: r.dataset.namespace, Pod: c("td.pod"),
			Version: c("td.version"), VersionClass: r.querySelector("td.version").className, Injector: c("td.injector"),
			Hash: code.textContent, HashTitle: code.title, Bootstrap: boot ? boot.textContent : "",
			Lines: c("td.lines"), Drops: c("td.drops"), Failures: c("td.failures"), Hidden: r.hidden};
	}))`
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	var rows []pageRow
	if err := json.Unmarshal([]byte(s), &rows); err != nil {
		t.Fatalf("the page's rows: %v: %s", err, s)
	}
	return rows
}

func apiRows(agents []api.Agent) []pageRow {
	rows := make([]pageRow, 0, len(agents))
	for _, a := range agents {
		rows = append(rows, pageRow{Namespace: a.Namespace, Pod: a.Pod})
	}
	return rows
}

// visiblePods is the shown rows' namespace/pod, sorted, comma-separated.
func visiblePods(rows []pageRow) string {
	var out []string
	for _, r := range rows {
		if !r.Hidden {
			out = append(out, r.Namespace+"/"+r.Pod)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// checkCells compares the page's version, config hash and figures cells
// with what the agents reported (helpers_test.go's agentFor, testIdentity,
// testDoctor) and with the API's view of the same moment.
func checkCells(t *testing.T, view api.Fleet, rows []pageRow) {
	t.Helper()
	byPod := map[string]pageRow{}
	for _, r := range rows {
		byPod[r.Namespace+"/"+r.Pod] = r
	}
	for _, pod := range []string{"shop/cart-0", "shop/cart-1", "shop/cart-2", "doc/api-1"} {
		r, ok := byPod[pod]
		if !ok {
			t.Errorf("%s is not in the page", pod)
			continue
		}
		wantVersion, wantClass := version, "version"
		if pod == "doc/api-1" {
			wantVersion, wantClass = "0.0.9", "version warn"
		}
		if r.Version != wantVersion || r.VersionClass != wantClass || r.Injector != version {
			t.Errorf("%s: collector %q (class %q), injector %q; want collector %s (class %q), injector %s", pod, r.Version, r.VersionClass, r.Injector, wantVersion, wantClass, version)
		}
		// The hash reported, shortened to 12, whole in its title; the
		// bootstrap one is the same, so not shown again.
		if r.Hash != "b0075742a5e1" || r.HashTitle != "b0075742a5e1d00d" || r.Bootstrap != "" {
			t.Errorf("%s: config hash cell %q (title %q, bootstrap %q), want b0075742a5e1 (b0075742a5e1d00d)", pod, r.Hash, r.HashTitle, r.Bootstrap)
		}
		if pod != "shop/cart-0" && (r.Lines != "0" || r.Drops != "0" || r.Failures != "0") {
			t.Errorf("%s sent no figures, but shows lines/s %q, drops/s %q, failures/s %q", pod, r.Lines, r.Drops, r.Failures)
		}
	}
	// cart-0 read 100 then 700 lines, and dropped 0 then 5 (testIdentity):
	// its cells are the API's rates, 600 lines for 5 drops over the same
	// time, as the page rounds them (two decimals under 10, none above).
	cart0, ok := byPod["shop/cart-0"]
	if !ok {
		return
	}
	var figures api.Figures
	for _, a := range view.Agents {
		if a.Namespace == "shop" && a.Pod == "cart-0" {
			figures = a.Figures
		}
	}
	lines, lp := cell(t, "cart-0 lines/s", cart0.Lines)
	drops, dp := cell(t, "cart-0 drops/s", cart0.Drops)
	if lines <= 0 || drops <= 0 || cart0.Failures != "0" {
		t.Errorf("cart-0: lines/s %q, drops/s %q, failures/s %q; want lines and drops above 0, no failures", cart0.Lines, cart0.Drops, cart0.Failures)
		return
	}
	if math.Abs(lines-figures.LinesPerSecond) > lp || math.Abs(drops-figures.DropsPerSecond) > dp {
		t.Errorf("cart-0: the page shows %q lines/s and %q drops/s, the API %v and %v", cart0.Lines, cart0.Drops, figures.LinesPerSecond, figures.DropsPerSecond)
	}
	t.Logf("cart-0 shows %s lines/s and %s drops/s (the API: %.2f and %.2f)", cart0.Lines, cart0.Drops, figures.LinesPerSecond, figures.DropsPerSecond)
	if lo, hi := (lines-lp)/(drops+dp), (lines+lp)/(drops-dp); drops <= dp || lo > 120 || hi < 120 {
		t.Errorf("cart-0: %q lines/s for %q drops/s: want 600 lines read for 5 dropped (a ratio of 120, here %.1f..%.1f)", cart0.Lines, cart0.Drops, lo, hi)
	}
}

// cell parses a rate cell and says how far the page rounded it.
func cell(t *testing.T, what, s string) (float64, float64) {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("%s %q is not a number", what, s)
		return 0, 0
	}
	if strings.Contains(s, ".") {
		return v, 0.005
	}
	return v, 0.5
}

func artifacts() string {
	if root, err := gobuild.RepoRoot(); err == nil {
		return filepath.Join(root, "_artifacts")
	}
	return os.TempDir()
}
