package collectorconfig_test

// Parsed lines: JSON, logfmt and regex lines written by a real process
// through the real wrapper, read by the real collector: each record gets
// its severity (level, severity or lvl; words and numbers), its time from
// time, timestamp or ts when there is one (else the CRI time) and its trace
// context (trace_id/span_id, traceId/spanId); a line that does not parse
// is kept as it is.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

const (
	traceHex = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanHex  = "00f067aa0ba902b7"
)

// parsedLine is one line the app writes and the record it must give.
type parsedLine struct {
	line string
	// severity number and text; 0 and "" for none.
	sevNumber int32
	sevText   string
	// time is the record's time; zero means the CRI time of the line.
	time            time.Time
	traceID, spanID string
	// attrs are attributes the record must carry.
	attrs map[string]any
}

var may1 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

var parserCases = map[string][]parsedLine{
	"json": {
		{line: `{"level":"info","msg":"otel bridge","time":"2024-05-01T10:00:00.123456789Z","trace_id":"` + traceHex + `","span_id":"` + spanHex + `","trace_flags":"01"}`,
			sevNumber: 9, sevText: "info", time: may1.Add(123456789), traceID: traceHex, spanID: spanHex, attrs: map[string]any{"msg": "otel bridge"}},
		// pino and bunyan: numeric levels, epoch milliseconds or ISO text.
		{line: `{"level":30,"time":1714557600123,"pid":7,"msg":"pino info"}`, sevNumber: 9, sevText: "30", time: may1.Add(123 * time.Millisecond), attrs: map[string]any{"pid": 7.0}},
		{line: `{"level":50,"time":1714557600456,"msg":"pino error"}`, sevNumber: 17, sevText: "50", time: may1.Add(456 * time.Millisecond)},
		{line: `{"name":"api","level":40,"time":"2024-05-01T10:00:01.5Z","msg":"bunyan warn","v":0}`, sevNumber: 13, sevText: "40", time: may1.Add(1500 * time.Millisecond)},
		{line: `{"level":60,"time":1714557602000,"msg":"pino fatal"}`, sevNumber: 21, sevText: "60", time: may1.Add(2 * time.Second)},
		// zap: ts in float seconds; GCP style severity and a zone offset.
		{line: `{"level":"warn","ts":1714557600.25,"caller":"main.go:12","msg":"zap"}`, sevNumber: 13, sevText: "warn", time: may1.Add(250 * time.Millisecond)},
		{line: `{"severity":"ERROR","timestamp":"2024-05-01T12:00:03+02:00","message":"gcp"}`, sevNumber: 17, sevText: "ERROR", time: may1.Add(3 * time.Second)},
		{line: `{"lvl":"debug","ts":1714557600000123,"msg":"micros"}`, sevNumber: 5, sevText: "debug", time: may1.Add(123 * time.Microsecond)},
		{line: `{"level":"CRITICAL","time":1714557600000000000,"msg":"nanos"}`, sevNumber: 21, sevText: "CRITICAL", time: may1},
		// Spring Boot / Micrometer trace fields.
		{line: `{"@timestamp":"x","level":"WARNING","traceId":"` + traceHex + `","spanId":"` + spanHex + `","message":"spring"}`, sevNumber: 13, sevText: "WARNING", traceID: traceHex, spanID: spanHex},
		// level wins over severity; no time field: the CRI time.
		{line: `{"level":"error","severity":"debug","msg":"both"}`, sevNumber: 17, sevText: "error"},
		// A time that does not parse, a level nobody maps: kept as text.
		{line: `{"level":"loud","time":"yesterday","msg":"odd"}`, sevText: "loud", attrs: map[string]any{"time": "yesterday"}},
		// Not JSON objects: kept as their body, nothing set.
		{line: `{"level":"info", "msg": broken`},
		{line: `plain text, not JSON`},
		{line: `[1,2,3]`},
	},
	"logfmt": {
		{line: `time=2024-05-01T10:00:00Z level=info msg="hello world" trace_id=` + traceHex + ` span_id=` + spanHex,
			sevNumber: 9, sevText: "info", time: may1, traceID: traceHex, spanID: spanHex, attrs: map[string]any{"msg": "hello world"}},
		{line: `ts=2024-05-01T10:00:00.5Z lvl=error caller=svc.go:9 msg=failed`, sevNumber: 17, sevText: "error", time: may1.Add(500 * time.Millisecond), attrs: map[string]any{"caller": "svc.go:9"}},
		{line: `level=30 msg=numbers`, sevNumber: 9, sevText: "30"},
		{line: `level=info msg="unterminated`},
		{line: `GET /healthz 200`},
	},
	"regex": {
		{line: `2024-05-01T10:00:00Z [WARN] disk almost full`, sevNumber: 13, sevText: "WARN", time: may1, attrs: map[string]any{"msg": "disk almost full"}},
		{line: `does not match the regex`},
	},
}

func TestParsersSetSeverityTimeAndTraceContext(t *testing.T) {
	parsers := map[string]string{"json": "json", "logfmt": "logfmt", "regex": `regex:^(?P<time>\S+) \[(?P<level>\w+)\] (?P<msg>.*)$`}
	f := newFixture(t, func(c *sidecarconfig.Config) {
		c.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
		c.LogParsing.Containers = map[string]sidecarconfig.Parsing{}
		for name, p := range parsers {
			c.LogParsing.Containers[name] = sidecarconfig.Parsing{Parser: p}
		}
	})
	f.startCollector()
	for name, cases := range parserCases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), name+".log")
			var text strings.Builder
			for _, c := range cases {
				text.WriteString(c.line + "\n")
			}
			if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			runWrapped(t, f, name, []string{lookPath(t, "cat"), file})
			written := readCRIFiles(t, filepath.Join(podDir(f), name))
			var want []record
			criTime := map[string]time.Time{}
			for _, l := range written {
				want = append(want, record{l.stream, l.text})
				criTime[l.text] = l.time
			}
			got := awaitRecords(t, f, name, want)
			byBody := map[string]sinkRecord{}
			for _, r := range got {
				byBody[r.Body] = r
			}
			for _, c := range cases {
				checkParsed(t, c, byBody[c.line], criTime[c.line])
			}
			checkNoTemporaryAttributes(t, got)
		})
	}
}

func checkParsed(t *testing.T, c parsedLine, r sinkRecord, cri time.Time) {
	t.Helper()
	if r.SeverityNumber != c.sevNumber || r.SeverityText != c.sevText {
		t.Errorf("%s\n  severity %d %q, want %d %q", c.line, r.SeverityNumber, r.SeverityText, c.sevNumber, c.sevText)
	}
	want := c.time
	if want.IsZero() {
		want = cri
	}
	// Epoch nanoseconds pass through a float64: within a microsecond.
	if d := r.Timestamp.Sub(want); d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("%s\n  time %s, want %s", c.line, r.Timestamp.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
	}
	if r.TraceID != c.traceID || r.SpanID != c.spanID {
		t.Errorf("%s\n  trace %q span %q, want %q %q", c.line, r.TraceID, r.SpanID, c.traceID, c.spanID)
	}
	for k, v := range c.attrs {
		if r.Attributes[k] != v {
			t.Errorf("%s\n  attribute %s = %#v, want %#v", c.line, k, r.Attributes[k], v)
		}
	}
	if c.sevNumber == 0 && c.sevText == "" {
		// Not parsed: only what the container parser sets.
		for k := range r.Attributes {
			if !strings.HasPrefix(k, "log.") && k != "logtag" {
				t.Errorf("%s\n  a line that does not parse got attribute %s", c.line, k)
			}
		}
	}
}

// TestLogParsingChangeKeepsOffsets: the fleet changes a running sidecar's
// parsing (Overrides.LogParsing) and the collector restarts with it. The
// one file_log receiver keeps its offsets: no line read before the change
// is read again, and the lines after it are parsed, the last one (held for
// continuation lines) included when the collector stops right after.
func TestLogParsingChangeKeepsOffsets(t *testing.T) {
	f := newFixture(t, func(c *sidecarconfig.Config) { c.Signals = []sidecarconfig.Signal{sidecarconfig.Logs} })
	const container = "api"
	writeLines := func(lines ...string) string {
		file := filepath.Join(t.TempDir(), "lines.log")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	before := []string{`{"level":"info","msg":"before 1"}`, `{"level":"error","msg":"before 2"}`}
	after := []string{`{"level":"warn","msg":"after 1"}`, `{"level":"error","msg":"after 2"}`}

	collector := f.startCollector()
	runWrapped(t, f, container, []string{lookPath(t, "cat"), writeLines(before...)})
	awaitRecords(t, f, container, []record{{"stdout", before[0]}, {"stdout", before[1]}})
	if err := collector.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}

	parsing := sidecarconfig.LogParsing{Default: sidecarconfig.Parsing{Multiline: "java", Parser: "json"}}
	changed, err := sidecarconfig.Overrides{LogParsing: &parsing}.Apply(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.config, err = sidecarconfig.Render(changed); err != nil {
		t.Fatal(err)
	}
	collector = f.startCollector()
	runWrapped(t, f, container, []string{lookPath(t, "cat"), writeLines(after...)})
	// Stop at once: the drain reads the file to its end, and recombine
	// hands on the record it holds when it stops.
	if err := collector.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}

	got := awaitRecords(t, f, container, []record{{"stdout", before[0]}, {"stdout", before[1]}, {"stdout", after[0]}, {"stdout", after[1]}})
	for _, r := range got {
		parsed := r.SeverityNumber != 0
		if strings.Contains(r.Body, "after") != parsed {
			t.Errorf("%s: severity %d; want it set only on the lines written after the change", r.Body, r.SeverityNumber)
		}
	}
}
