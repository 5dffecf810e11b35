// Package otlpsink is a real OTLP/gRPC server for tests and benchmarks: it
// receives logs, metrics and traces the way a gateway collector would, keeps
// them in memory, and lets a test wait for what it expects.
//
//	sink, err := otlpsink.Start("127.0.0.1:0", otlpsink.Options{})
//	defer sink.Close()
//	// point an exporter at sink.Addr(), then:
//	err = sink.Await(ctx, func() bool { return len(sink.Logs()) >= n })
package otlpsink

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	// Exporters compress with gzip by default, as a gateway accepts.
	_ "google.golang.org/grpc/encoding/gzip"
)

// LogRecord is one received log record, flattened with its resource.
type LogRecord struct {
	Resource   map[string]any
	Attributes map[string]any
	Body       string
	// Timestamp is the record's time (for container logs: the CRI time).
	Timestamp         time.Time
	ObservedTimestamp time.Time
	// SeverityNumber and SeverityText are the record's severity (0 and ""
	// when unset).
	SeverityNumber int32
	SeverityText   string
	// TraceID and SpanID are the record's trace context in hex ("" when
	// unset).
	TraceID string
	SpanID  string
	// Received is when the sink got the request that carried the record.
	Received time.Time
}

// Metric is one received metric (its data points are not kept).
type Metric struct {
	Resource map[string]any
	Name     string
	Received time.Time
}

// Span is one received span.
type Span struct {
	Resource   map[string]any
	Attributes map[string]any
	Name       string
	TraceID    string
	Received   time.Time
}

// Options changes what the sink keeps.
type Options struct {
	// OnLogs, when set, is called for every logs request as it arrives
	// (before the response), e.g. to measure latency without storing.
	OnLogs func(ld plog.Logs, received time.Time)
	// DiscardLogs keeps log records out of memory (counts are still kept).
	DiscardLogs bool
}

// Sink is a running OTLP/gRPC server. Its methods are safe for concurrent use.
type Sink struct {
	opts Options
	lis  net.Listener
	srv  *grpc.Server

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever data arrives
	logs     []LogRecord
	logCount int
	metrics  []Metric
	spans    []Span
	fail     error
}

// Start listens on addr (host:port; port 0 picks a free one) and serves OTLP.
func Start(addr string, opts Options) (*Sink, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("otlp sink: listen on %s: %w", addr, err)
	}
	s := &Sink{opts: opts, lis: lis, srv: grpc.NewServer(), changed: make(chan struct{})}
	plogotlp.RegisterGRPCServer(s.srv, &logsServer{s: s})
	pmetricotlp.RegisterGRPCServer(s.srv, &metricsServer{s: s})
	ptraceotlp.RegisterGRPCServer(s.srv, &tracesServer{s: s})
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

// Addr is the host:port the sink listens on.
func (s *Sink) Addr() string { return s.lis.Addr().String() }

// Close stops the server at once.
func (s *Sink) Close() { s.srv.Stop() }

// FailWith makes every export fail with err (e.g. a gRPC status error with
// codes.Unavailable, which exporters retry) until called with nil.
func (s *Sink) FailWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// Logs returns a copy of the log records received so far, in arrival order.
func (s *Sink) Logs() []LogRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LogRecord(nil), s.logs...)
}

// LogCount is how many log records arrived (kept or not).
func (s *Sink) LogCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logCount
}

// Metrics returns a copy of the metrics received so far.
func (s *Sink) Metrics() []Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Metric(nil), s.metrics...)
}

// Spans returns a copy of the spans received so far.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Await returns when cond is true, checking it now and whenever data
// arrives, or fails when ctx ends.
func (s *Sink) Await(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("otlp sink: condition not met: %w", ctx.Err())
		case <-ch:
		}
	}
}

// record runs add under the lock and wakes waiters, unless the sink is set
// to fail.
func (s *Sink) record(add func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	add()
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

type logsServer struct {
	plogotlp.UnimplementedGRPCServer
	s *Sink
}

func (l *logsServer) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	now := time.Now()
	ld := req.Logs()
	err := l.s.record(func() {
		l.s.logCount += ld.LogRecordCount()
		if !l.s.opts.DiscardLogs {
			l.s.logs = append(l.s.logs, LogRecords(ld, now)...)
		}
	})
	if err == nil && l.s.opts.OnLogs != nil {
		l.s.opts.OnLogs(ld, now)
	}
	return plogotlp.NewExportResponse(), err
}

// LogRecords flattens the records of ld, received at now, with their
// resources (for an OnLogs that keeps them its own way).
func LogRecords(ld plog.Logs, now time.Time) []LogRecord {
	out := make([]LogRecord, 0, ld.LogRecordCount())
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		res := rl.Resource().Attributes().AsRaw()
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			recs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < recs.Len(); k++ {
				r := recs.At(k)
				out = append(out, LogRecord{
					Resource:          res,
					Attributes:        r.Attributes().AsRaw(),
					Body:              r.Body().AsString(),
					Timestamp:         r.Timestamp().AsTime(),
					ObservedTimestamp: r.ObservedTimestamp().AsTime(),
					SeverityNumber:    int32(r.SeverityNumber()),
					SeverityText:      r.SeverityText(),
					TraceID:           hexID(traceIDBytes(r.TraceID())),
					SpanID:            hexID(spanIDBytes(r.SpanID())),
					Received:          now,
				})
			}
		}
	}
	return out
}

type metricsServer struct {
	pmetricotlp.UnimplementedGRPCServer
	s *Sink
}

func (m *metricsServer) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	now := time.Now()
	md := req.Metrics()
	err := m.s.record(func() { m.s.metrics = appendMetrics(m.s.metrics, md, now) })
	return pmetricotlp.NewExportResponse(), err
}

func appendMetrics(out []Metric, md pmetric.Metrics, now time.Time) []Metric {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		res := rm.Resource().Attributes().AsRaw()
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				out = append(out, Metric{Resource: res, Name: ms.At(k).Name(), Received: now})
			}
		}
	}
	return out
}

type tracesServer struct {
	ptraceotlp.UnimplementedGRPCServer
	s *Sink
}

func (t *tracesServer) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	now := time.Now()
	td := req.Traces()
	err := t.s.record(func() { t.s.spans = appendSpans(t.s.spans, td, now) })
	return ptraceotlp.NewExportResponse(), err
}

func appendSpans(out []Span, td ptrace.Traces, now time.Time) []Span {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		res := rs.Resource().Attributes().AsRaw()
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			spans := rs.ScopeSpans().At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				out = append(out, Span{
					Resource:   res,
					Attributes: sp.Attributes().AsRaw(),
					Name:       sp.Name(),
					TraceID:    traceID(sp.TraceID()),
					Received:   now,
				})
			}
		}
	}
	return out
}

func traceID(id pcommon.TraceID) string { return id.String() }

// hexID is a trace or span ID in hex, "" when unset (all zero).
func hexID(id []byte) string {
	for _, c := range id {
		if c != 0 {
			return hex.EncodeToString(id)
		}
	}
	return ""
}

func traceIDBytes(id pcommon.TraceID) []byte { return id[:] }

func spanIDBytes(id pcommon.SpanID) []byte { return id[:] }
