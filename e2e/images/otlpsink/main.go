// Command otlpsink is the gateway of the end-to-end test and of `make demo`:
// an OTLP/gRPC receiver (internal/otlpsink) that keeps what it receives and
// answers queries over HTTP (package e2e/sinkapi), and prints one line per
// log record, per batch of metrics and per span, so that `kubectl logs`
// shows the telemetry arriving.
//
//	otlpsink [-otlp :4317] [-http :8080] [-max-logs 100000] [-print=true]
//
// HTTP: /logs, /metrics, /spans (JSON; ?namespace=&pod=&container= filter by
// resource), /summary (text), /healthz.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
)

func main() {
	otlpAddr := flag.String("otlp", fmt.Sprintf(":%d", sinkapi.OTLPPort), "OTLP/gRPC listen address")
	httpAddr := flag.String("http", fmt.Sprintf(":%d", sinkapi.HTTPPort), "query listen address (HTTP)")
	maxLogs := flag.Int("max-logs", 100000, "log records kept (the oldest go first)")
	print := flag.Bool("print", true, "print what arrives on stdout")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *otlpAddr, *httpAddr, *maxLogs, *print, os.Stdout); err != nil {
		slog.Error("otlpsink", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, otlpAddr, httpAddr string, maxLogs int, print bool, out io.Writer) error {
	w := io.Discard
	if print {
		w = out
	}
	s := newServer(maxLogs, w)
	sink, err := otlpsink.Start(otlpAddr, otlpsink.Options{DiscardLogs: true, OnLogs: s.addLogs})
	if err != nil {
		return err
	}
	defer sink.Close()
	s.sink = sink
	l, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	slog.Info("otlpsink serving", "otlp", sink.Addr(), "http", l.Addr().String())
	go s.printMetricsAndSpans(ctx)
	<-ctx.Done()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

type server struct {
	sink *otlpsink.Sink
	out  io.Writer

	mu      sync.Mutex
	maxLogs int
	logs    []sinkapi.Log // a ring once full: oldest at start
	start   int
	printMu sync.Mutex
}

func newServer(maxLogs int, out io.Writer) *server {
	if maxLogs < 1 {
		maxLogs = 1
	}
	return &server{maxLogs: maxLogs, out: out}
}

func (s *server) addLogs(ld plog.Logs, received time.Time) {
	var batch []sinkapi.Log
	for _, r := range otlpsink.LogRecords(ld, received) {
		batch = append(batch, sinkapi.Log{Resource: r.Resource, Attributes: r.Attributes, Body: r.Body, Time: r.Timestamp, Received: r.Received})
	}
	s.mu.Lock()
	for _, l := range batch {
		if len(s.logs) < s.maxLogs {
			s.logs = append(s.logs, l)
			continue
		}
		s.logs[s.start] = l
		s.start = (s.start + 1) % s.maxLogs
	}
	s.mu.Unlock()
	s.printMu.Lock()
	defer s.printMu.Unlock()
	for _, l := range batch {
		_, _ = fmt.Fprintf(s.out, "log     %s %-6s %s\n", who(l.Resource, true), l.Stream(), l.Body)
	}
}

func (s *server) allLogs() []sinkapi.Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sinkapi.Log, 0, len(s.logs))
	out = append(out, s.logs[s.start:]...)
	return append(out, s.logs[:s.start]...)
}

// who names a resource: namespace/pod[/container], or its service.
func who(res map[string]any, container bool) string {
	f := func(k string) string { v, _ := res[k].(string); return v }
	if f(sinkapi.AttrPod) == "" {
		if svc := f(sinkapi.AttrService); svc != "" {
			return "service " + svc
		}
		return "(no pod)"
	}
	w := f(sinkapi.AttrNamespace) + "/" + f(sinkapi.AttrPod)
	if container && f(sinkapi.AttrContainer) != "" {
		w += "/" + f(sinkapi.AttrContainer)
	}
	return w
}

// printMetricsAndSpans prints, as they arrive, one line per resource for
// each batch of metrics, and one line per span.
func (s *server) printMetricsAndSpans(ctx context.Context) {
	var seenMetrics, seenSpans int
	for {
		err := s.sink.Await(ctx, func() bool {
			return len(s.sink.Metrics()) > seenMetrics || len(s.sink.Spans()) > seenSpans
		})
		if err != nil {
			return
		}
		metrics, spans := s.sink.Metrics(), s.sink.Spans()
		s.printMu.Lock()
		byWho := map[string][]string{}
		var order []string
		for _, m := range metrics[seenMetrics:] {
			w := who(m.Resource, false)
			if _, ok := byWho[w]; !ok {
				order = append(order, w)
			}
			byWho[w] = append(byWho[w], m.Name)
		}
		for _, w := range order {
			names := dedupe(byWho[w])
			shown := names
			if len(shown) > 6 {
				shown = append(append([]string(nil), shown[:6]...), fmt.Sprintf("and %d more", len(names)-6))
			}
			_, _ = fmt.Fprintf(s.out, "metrics %s: %d: %s\n", w, len(byWho[w]), strings.Join(shown, ", "))
		}
		for _, sp := range spans[seenSpans:] {
			_, _ = fmt.Fprintf(s.out, "span    %s %s trace %s\n", who(sp.Resource, false), sp.Name, sp.TraceID)
		}
		s.printMu.Unlock()
		seenMetrics, seenSpans = len(metrics), len(spans)
	}
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+sinkapi.PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+sinkapi.PathLogs, func(w http.ResponseWriter, r *http.Request) {
		f := sinkapi.FilterFromQuery(r.URL.Query())
		out := []sinkapi.Log{}
		for _, l := range s.allLogs() {
			if f.Match(l.Resource) {
				out = append(out, l)
			}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET "+sinkapi.PathMetrics, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.metricSeries(sinkapi.FilterFromQuery(r.URL.Query())))
	})
	mux.HandleFunc("GET "+sinkapi.PathSpans, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.spans(sinkapi.FilterFromQuery(r.URL.Query())))
	})
	mux.HandleFunc("GET "+sinkapi.PathSummary, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, sinkapi.Summarize(s.allLogs(), s.metricSeries(sinkapi.Filter{}), s.spans(sinkapi.Filter{})))
	})
	return mux
}

// metricSeries groups the metrics received by name and resource.
func (s *server) metricSeries(f sinkapi.Filter) []sinkapi.MetricSeries {
	index := map[string]int{}
	out := []sinkapi.MetricSeries{}
	for _, m := range s.sink.Metrics() {
		if !f.Match(m.Resource) {
			continue
		}
		res, _ := json.Marshal(m.Resource)
		k := m.Name + "\x00" + string(res)
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, sinkapi.MetricSeries{Name: m.Name, Resource: m.Resource})
		}
		out[i].Count++
		out[i].Last = m.Received
	}
	return out
}

func (s *server) spans(f sinkapi.Filter) []sinkapi.Span {
	out := []sinkapi.Span{}
	for _, sp := range s.sink.Spans() {
		if f.Match(sp.Resource) {
			out = append(out, sinkapi.Span{Name: sp.Name, TraceID: sp.TraceID, Resource: sp.Resource, Attributes: sp.Attributes, Received: sp.Received})
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		slog.Warn("write answer", "err", err)
	}
}
