package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/httpapi"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
)

// fleetServer serves the fleet server's real local API (httpapi.Local) on
// loopback, over a registry filled as the OpAMP side fills it.
func fleetServer(t *testing.T) string {
	t.Helper()
	reg := registry.New(registry.Options{Replica: "fargate-otel-fleet-0", Version: "0.1.0"})
	add := func(uid, ns, pod, collector string, healthy bool, dropped int64) {
		conn := new(int)
		kind, injector := api.KindSidecar, "0.1.0"
		if strings.HasPrefix(pod, "fargate-otel-gateway-") {
			kind, injector = api.KindGateway, ""
		}
		reg.Connect(registry.Identity{UID: uid, Namespace: ns, Pod: pod, Kind: kind}, conn)
		reg.SetDescription(uid, conn, registry.Description{Node: "fargate-ip-1", CollectorVersion: collector, InjectorVersion: injector, ConfigHash: "0123456789abcdef"})
		reg.SetHealth(uid, conn, api.Health{Reported: true, Healthy: healthy})
		reg.AddFigures(uid, conn, registry.FiguresReport{LinesRead: map[string]int64{"app/stdout": 0}})
		reg.AddFigures(uid, conn, registry.FiguresReport{LinesRead: map[string]int64{"app/stdout": 10}, WrapperDropped: map[string]int64{"app": dropped}})
	}
	add("11111111-1111-1111-1111-111111111111", "shop", "cart-0", "0.1.0", true, 0)
	add("22222222-2222-2222-2222-222222222222", "shop", "cart-1", "0.1.0", false, 0)
	add("33333333-3333-3333-3333-333333333333", "billing", "invoice-0", "0.0.9", true, 3)
	add("44444444-4444-4444-4444-444444444444", "fargate-otel", "fargate-otel-gateway-7d9f-x2", "0.1.0", true, 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpapi.Local(httpapi.Options{Replica: "fargate-otel-fleet-0", Version: "0.1.0", Registry: reg})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

func TestFleetCommand(t *testing.T) {
	url := fleetServer(t)
	for _, c := range []struct {
		args []string
		pods []string
	}{
		{nil, []string{"invoice-0", "fargate-otel-gateway-7d9f-x2", "cart-0", "cart-1"}},
		{[]string{"--kind", "gateway"}, []string{"fargate-otel-gateway-7d9f-x2"}},
		{[]string{"--kind", "sidecar"}, []string{"invoice-0", "cart-0", "cart-1"}},
		{[]string{"-n", "shop"}, []string{"cart-0", "cart-1"}},
		{[]string{"--unhealthy"}, []string{"cart-1"}},
		{[]string{"--stale"}, []string{"invoice-0"}},
		{[]string{"--dropping"}, []string{"invoice-0"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, append([]string{"fleet", "--url", url, "-o", "json"}, c.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var f api.Fleet
			if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
			var got []string
			for _, a := range f.Agents {
				got = append(got, a.Pod)
				if want := map[bool]string{true: api.KindGateway, false: api.KindSidecar}[strings.HasPrefix(a.Pod, "fargate-otel-gateway-")]; a.Kind != want {
					t.Errorf("%s: kind %q, want %q", a.Pod, a.Kind, want)
				}
			}
			if !strings.Contains(r.stdout, `"kind": "`) {
				t.Errorf("-o json has no kind:\n%s", r.stdout)
			}
			if strings.Join(got, ",") != strings.Join(c.pods, ",") {
				t.Errorf("pods %v, want %v", got, c.pods)
			}
		})
	}
	r := runCLI(t, nil, "fleet", "--url", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"NAMESPACE", "KIND", "cart-1", "unhealthy", "0.0.9", "(stale: version)", "0123456789ab", "fargate-otel-gateway-7d9f-x2  gateway", "chart's", "3 sidecars and 1 gateway replicas: 1 unhealthy, 1 stale, 1 dropping"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCLI(t, nil, "fleet", "--url", url, "-o", "yaml"); r.code == 0 || !strings.Contains(r.stderr, "use table or json") {
		t.Errorf("-o yaml: exit %d, %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "fleet", "--url", url, "--kind", "daemonset"); r.code == 0 || !strings.Contains(r.stderr, "use sidecar or gateway") {
		t.Errorf("--kind daemonset: exit %d, %s", r.code, r.stderr)
	}
}

// TestFleetWeb: --web prints the address of the fleet page, with the
// command's filters in it, and keeps running (past --timeout, which bounds
// a look-up only) until interrupted; the address it prints is the page,
// with those filters preset in its controls.
func TestFleetWeb(t *testing.T) {
	url := fleetServer(t)
	cmd := exec.Command(cli, "fleet", "--url", url+"/", "-n", "shop", "--unhealthy", "--web", "--timeout", "1ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	deadline := time.After(30 * time.Second)
	var out []string
	for len(out) < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("fargate-otel fleet --web ended after printing %q: %v, stderr %s", out, <-exited, stderr.String())
			}
			out = append(out, l)
		case <-deadline:
			t.Fatalf("fargate-otel fleet --web printed %q in 30s, want the page's address", out)
		}
	}
	want := url + "/?namespace=shop&unhealthy=true"
	if out[0] != "The fleet page: "+want || out[1] != "Press Ctrl-C to stop." {
		t.Fatalf("fargate-otel fleet --web printed %q, want the page at %s", out, want)
	}

	// The address is the page, with the command's filters preset.
	resp, err := http.Get(strings.TrimPrefix(out[0], "The fleet page: "))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	page := string(body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("the printed address: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, w := range []string{`<title>fargate-otel fleet</title>`, `<option value="shop" selected>shop</option>`,
		`id="unhealthy" name="unhealthy" checked>`, `id="stale" name="stale">`, `id="dropping" name="dropping">`,
		`<td class="pod">cart-0</td>`, `<td class="pod">cart-1</td>`, `<td class="pod">invoice-0</td>`, `<b id="count-total">4</b>`} {
		if !strings.Contains(page, w) {
			t.Errorf("the page at the printed address lacks %s", w)
		}
	}

	// Still serving, well past --timeout; Ctrl-C ends it cleanly.
	select {
	case err := <-exited:
		t.Fatalf("fargate-otel fleet --web ended before it was interrupted: %v, stderr %s", err, stderr.String())
	default:
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after Ctrl-C: %v, stderr %s; want exit 0", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fargate-otel fleet --web did not end within 10s of Ctrl-C")
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
}
