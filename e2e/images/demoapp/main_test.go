package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
)

func TestLinesAndTelemetry(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var stdout, stderr bytes.Buffer
	o := options{lines: 3, interval: 2 * time.Millisecond, tracesEvery: 2, metrics: true,
		service: "demo-app", endpoint: "http://" + sink.Addr(), flushWait: 10 * time.Second}
	if code := run(context.Background(), o, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	wantOut := "demo-app stdout line 1\ndemo-app stdout line 2\ndemo-app stdout line 3 (last)\n"
	wantErr := "demo-app stderr line 1\ndemo-app stderr line 2\ndemo-app stderr line 3 (last)\n"
	if stdout.String() != wantOut || stderr.String() != wantErr {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	// run waits for the exports before it returns: a trace at start and one
	// at line 2, two spans each, and a metric with each trace.
	spans, metrics := sink.Spans(), sink.Metrics()
	if len(spans) != 4 || len(metrics) != 2 {
		t.Fatalf("got %d spans and %d metrics, want 4 and 2", len(spans), len(metrics))
	}
	names := map[string]int{}
	for _, s := range spans {
		names[s.Name]++
		if s.Resource["service.name"] != "demo-app" {
			t.Errorf("span resource %v", s.Resource)
		}
	}
	if names["demo-app.work"] != 2 || names["demo-app.step"] != 2 {
		t.Errorf("span names %v", names)
	}
	if metrics[0].Name != "demo_app.lines" {
		t.Errorf("metric %q", metrics[0].Name)
	}
}

// Nobody listening must neither block the lines nor print anything.
func TestNoCollector(t *testing.T) {
	var stdout, stderr bytes.Buffer
	o := options{lines: 2, tracesEvery: 1, metrics: true, service: "x", endpoint: "127.0.0.1:1", flushWait: 50 * time.Millisecond}
	start := time.Now()
	if code := run(context.Background(), o, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the app waited %v for a missing collector", d)
	}
	if stderr.String() != "x stderr line 1\nx stderr line 2 (last)\n" {
		t.Errorf("stderr: %q", stderr.String())
	}
}

func TestSIGTERMStopsAForeverRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := options{lines: 0, interval: time.Hour, tracesEvery: -1, service: "x", endpoint: "127.0.0.1:1"}
	done := make(chan int, 1)
	var stdout bytes.Buffer
	go func() { done <- run(ctx, o, &stdout, io.Discard) }()
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.HasPrefix(stdout.String(), "x stdout line 1\n") {
			t.Errorf("code %d, stdout %q", code, stdout.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop when its context ended")
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags([]string{"-lines", "-1"}, io.Discard); err == nil {
		t.Error("-lines -1 accepted")
	}
	if _, err := parseFlags([]string{"extra"}, io.Discard); err == nil {
		t.Error("an argument accepted")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:9999")
	o, err := parseFlags(nil, io.Discard)
	if err != nil || o.endpoint != "http://localhost:9999" || o.lines != 0 || o.interval != time.Second {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}
