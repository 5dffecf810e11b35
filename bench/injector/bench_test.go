// Package injectorbench measures the webhook's round trip over real HTTPS
// (controller-runtime's webhook server on loopback) at 50 concurrent
// requests, against a no-op handler on the same server in the same run, so
// that the figures are ratios on a noisy machine.
//
//	make bench-injector
package injectorbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint"
	"github.com/fargate-otel/fargate-otel/injector/entrypoint/registrytest"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/injector/webhook/webhooktest"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// phases: the figure (50 concurrent clients), and one client alone
// (the latency a single pod creation sees on an idle webhook).
var phases = []struct {
	concurrency, rounds, perRound int
}{
	{concurrency: 50, rounds: 6, perRound: 1500},
	{concurrency: 1, rounds: 4, perRound: 500},
}

const warmup = 500

type target struct {
	name   string
	path   string
	review webhooktest.Review
	// floor marks a reference that does part of the webhook's work: not
	// held to the goals, it shows what no webhook can avoid.
	floor bool
	lat   []time.Duration
	wall  time.Duration
	// cpu is the process's CPU time (client and server) while this
	// target's rounds ran: steadier than wall-clock on a shared machine.
	cpu time.Duration
}

// BenchmarkWebhookRoundTrip runs its own fixed load (run it with
// -benchtime 1x): rounds of perRound requests per handler, the handlers
// interleaved, 50 clients at a time.
func BenchmarkWebhookRoundTrip(b *testing.B) {
	for range b.N {
		run(b)
	}
}

func run(b *testing.B) {
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	reg := registrytest.New(b, registrytest.Options{TLS: true})
	image, _ := reg.Push(b, "team/app:1", registrytest.Image{Entrypoint: []string{"/usr/bin/app"}, Cmd: []string{"--serve"}})
	promReg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(promReg)
	if err != nil {
		b.Fatal(err)
	}
	resolver, err := entrypoint.New(entrypoint.Options{Transport: reg.Transport, DisableECR: true, Observer: metrics})
	if err != nil {
		b.Fatal(err)
	}
	cfg := injector.DefaultConfig()
	cfg.ClusterName = "bench"
	handler := webhook.NewHandler(webhook.Options{Config: cfg, Resolver: resolver, Metrics: metrics})
	withCommand, err := webhooktest.Request(admissionv1.Create, "apps", webhooktest.DeploymentPod("registry.example.com/team/app:1", true))
	if err != nil {
		b.Fatal(err)
	}
	answer := handler.Handle(ctx, admissionRequest(b, withCommand))
	if len(answer.Patch) == 0 {
		b.Fatalf("not injected: %+v", answer)
	}
	yamlPatch := withConfigAsYAML(b, answer.Patch)
	fmt.Printf("patch of an injected pod: %d bytes with the collector's settings; %d bytes with its whole YAML config (as before settings)\n",
		len(answer.Patch), len(yamlPatch))
	srv, err := webhooktest.Start(ctx, b.TempDir(), map[string]admission.Handler{
		"/noop":              webhook.NoopHandler(),
		"/mutate":            handler,
		"/decode":            floorHandler(nil, nil),
		"/decode+patch":      floorHandler(answer.Patch, answer.Warnings),
		"/decode+yaml-patch": floorHandler(yamlPatch, answer.Warnings),
	})
	if err != nil {
		b.Fatal(err)
	}

	withoutCommand, err := webhooktest.Request(admissionv1.Create, "apps", webhooktest.DeploymentPod(image, false))
	if err != nil {
		b.Fatal(err)
	}
	targets := []*target{
		{name: "no-op handler (reference)", path: "/noop", review: withCommand},
		{name: "inject, no registry look-up", path: "/mutate", review: withCommand},
		{name: "inject, look-up cache warm", path: "/mutate", review: withoutCommand},
		{name: "floor: decode the pod only", path: "/decode", review: withCommand, floor: true},
		{name: "floor: decode, answer the same patch", path: "/decode+patch", review: withCommand, floor: true},
		{name: "before: decode, answer the patch with the YAML config", path: "/decode+yaml-patch", review: withCommand, floor: true},
	}
	// Every answer is checked once: the benchmark must measure real work.
	for _, tg := range targets[1:3] {
		resp, err := srv.Post(ctx, tg.path, tg.review)
		if err != nil || !resp.Allowed || len(resp.Patch) == 0 {
			b.Fatalf("%s: not injected: %v %+v", tg.name, err, resp)
		}
		for _, w := range resp.Warnings {
			if strings.Contains(w, "entrypoint") {
				b.Fatalf("%s: look-up failed: %s", tg.name, w)
			}
		}
	}

	for _, tg := range targets {
		load(b, srv, tg, warmup, 50)
	}
	for _, ph := range phases {
		for _, tg := range targets {
			tg.lat, tg.wall, tg.cpu = nil, 0, 0
		}
		for r := range ph.rounds {
			order := slices.Clone(targets)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, tg := range order {
				load(b, srv, tg, ph.perRound, ph.concurrency)
			}
		}
		report(b, targets, ph.concurrency, ph.rounds, ph.perRound)
	}
	families, err := promReg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		switch f.GetName() {
		case "fargate_otel_injector_registry_lookup_duration_seconds", "fargate_otel_injector_image_resolve_duration_seconds":
			for _, m := range f.GetMetric() {
				h := m.GetHistogram()
				fmt.Printf("%s%v: %d, mean %.2fms\n", f.GetName(), m.GetLabel(), h.GetSampleCount(), 1000*h.GetSampleSum()/float64(max(h.GetSampleCount(), 1)))
			}
		}
	}
}

// load sends n requests from `concurrency` clients and records each latency.
func load(b *testing.B, srv *webhooktest.Server, tg *target, n, concurrency int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	errs := make(chan error, concurrency)
	start, cpu := time.Now(), cpuTime(b)
	for range concurrency {
		wg.Go(func() {
			local := make([]time.Duration, 0, n/concurrency+1)
			for range next {
				t := time.Now()
				resp, err := srv.Post(context.Background(), tg.path, tg.review)
				d := time.Since(t)
				if err != nil || !resp.Allowed {
					errs <- fmt.Errorf("%s: %w", tg.name, err)
					return
				}
				local = append(local, d)
			}
			mu.Lock()
			tg.lat = append(tg.lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	tg.wall += time.Since(start)
	tg.cpu += cpuTime(b) - cpu
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func report(b *testing.B, targets []*target, concurrency, rounds, perRound int) {
	ref := summarize(targets[0])
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(w, "\nwebhook round trip over HTTPS (controller-runtime webhook server, loopback), %d concurrent clients, %d requests per handler in %d interleaved rounds, one process\n",
		concurrency, rounds*perRound, rounds)
	_, _ = fmt.Fprintln(w, "handler\tp50\tp99\tmean\treq/s\tmean ratio\tp50 ratio\tp99 ratio\tCPU/req\tCPU ratio\tgoals (ratio <= 1.5x, p99 < 20ms)")
	for i, tg := range targets {
		s := summarize(tg)
		goal := ""
		if tg.floor {
			goal = "(floor)"
		} else if i > 0 {
			ok := s.mean.Seconds()/ref.mean.Seconds() <= 1.5 && s.p99 < 20*time.Millisecond
			goal = map[bool]string{true: "met", false: "MISSED"}[ok]
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.0f\t%.2fx\t%.2fx\t%.2fx\t%.0fµs\t%.2fx\t%s\n", tg.name, ms(s.p50), ms(s.p99), ms(s.mean), s.rps,
			s.mean.Seconds()/ref.mean.Seconds(), s.p50.Seconds()/ref.p50.Seconds(), s.p99.Seconds()/ref.p99.Seconds(),
			float64(s.cpu.Nanoseconds())/1000, s.cpu.Seconds()/ref.cpu.Seconds(), goal)
	}
	_ = w.Flush()
	for i, tg := range targets[1:] {
		if tg.floor {
			continue
		}
		s := summarize(tg)
		b.ReportMetric(s.mean.Seconds()/ref.mean.Seconds(), fmt.Sprintf("ratio%d/c%d", i+1, concurrency))
		b.ReportMetric(float64(s.p99.Microseconds())/1000, fmt.Sprintf("p99ms%d/c%d", i+1, concurrency))
		b.ReportMetric(s.cpu.Seconds()/ref.cpu.Seconds(), fmt.Sprintf("cpuratio%d/c%d", i+1, concurrency))
	}
}

type summary struct {
	p50, p99, mean time.Duration
	rps            float64
	cpu            time.Duration // per request
}

func summarize(tg *target) summary {
	lat := slices.Clone(tg.lat)
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	return summary{p50: q(0.50), p99: q(0.99), mean: sum / time.Duration(len(lat)), rps: float64(len(lat)) / tg.wall.Seconds(),
		cpu: tg.cpu / time.Duration(len(lat))}
}

// floorHandler does what no pod webhook can skip, and nothing else: it
// decodes the pod as the webhook does, and answers with patch (none when
// nil) and warnings, made beforehand. Between it and the no-op is the cost of reading a
// pod and of sending this patch (which the API server, here the client,
// decodes); between it and the webhook is the cost of Mutate and of making
// the patch.
func floorHandler(patch []byte, warnings []string) admission.Handler {
	return admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		var pod corev1.Pod
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &pod); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		resp := admission.Allowed("").WithWarnings(warnings...)
		if patch != nil {
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
		}
		return resp
	})
}

// withConfigAsYAML is patch with the collector's settings replaced by the
// whole YAML they render, in FARGATE_OTEL_CONFIG, as the injector sent it
// before pods carried settings: the same answer otherwise, so that the
// floor rows compare the two sizes of patch and nothing else.
func withConfigAsYAML(b *testing.B, patch []byte) []byte {
	var ops []any
	if err := json.Unmarshal(patch, &ops); err != nil {
		b.Fatal(err)
	}
	replaced := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["name"] == sidecarconfig.SettingsEnvVar {
				settings, _ := v["value"].(string)
				cc, err := sidecarconfig.Decode([]byte(settings))
				if err != nil {
					b.Fatal(err)
				}
				yaml, err := sidecarconfig.Render(cc)
				if err != nil {
					b.Fatal(err)
				}
				v["name"], v["value"] = sidecarconfig.ConfigEnvVar, string(yaml)
				replaced++
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(ops)
	if replaced != 1 {
		b.Fatalf("%d settings env vars in the patch, want 1", replaced)
	}
	out, err := json.Marshal(ops)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// admissionRequest decodes a review as the webhook server does.
func admissionRequest(b *testing.B, review webhooktest.Review) admission.Request {
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(review.Body, &ar); err != nil {
		b.Fatal(err)
	}
	return admission.Request{AdmissionRequest: *ar.Request}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
