package sidecarconfig

import (
	"strconv"
	"strings"
)

// The file_log operators of LogParsing, after the container parser:
//
//	container-parser → parsing-router ─┬─ container/web/... ─┐
//	                                   ├─ default/...       ─┼→ parsed (noop) → the pipeline
//	                                   └────────────────────┘
//
// The router (only when some container is parsed apart from the default)
// sends each record by its resource k8s.container.name, which the
// container parser sets from the file path. Each branch is, in order:
// multiline (a source key, one or two recombine operators, the key
// removed), then the parser, severity, time and trace context. Every step
// that can fail keeps the record as it is (on_error: send_quiet, so that
// the collector's own log is not flooded by lines that are not JSON): a
// line is never dropped.

const (
	routerOperatorID = "parsing-router"
	joinOperatorID   = "parsed"

	// sourceAttr keys recombine by file and stream: stdout and stderr share
	// a container's file, and a line of one must never end or join a
	// record of the other. timeAttr carries the record's time from its
	// field, normalised, to the time parsers, and severityAttr the first
	// severity field present to the severity parser. All are removed again.
	sourceAttr   = `attributes["fargate_otel.source"]`
	timeAttr     = `attributes["fargate_otel.time"]`
	severityAttr = `attributes["fargate_otel.severity"]`
)

// SeverityFields, TimeFields and the trace fields are the parsed fields
// that set a record's severity, time and trace context; the first present
// wins.
var (
	SeverityFields = []string{"level", "severity", "lvl"}
	TimeFields     = []string{"time", "timestamp", "ts"}
)

// severityMapping maps level words and numbers to OpenTelemetry
// severities (lowercase: the parser lowercases the value). The numbers are
// bunyan's and pino's (10 trace ... 60 fatal), the usual numeric levels of
// JSON logs; the words cover log4j/logback, java.util.logging, Python,
// Go's slog and zap, .NET and Serilog, and syslog.
var severityMapping = map[string]any{
	"trace": []any{"trace", "trc", "finest", "finer", "verbose", "10"},
	"debug": []any{"debug", "dbg", "fine", "config", "20"},
	"info":  []any{"info", "inf", "information", "informational", "notice", "30"},
	"warn":  []any{"warn", "warning", "wrn", "40"},
	"error": []any{"error", "err", "eror", "severe", "dpanic", "50"},
	"fatal": []any{"fatal", "ftl", "critical", "crit", "panic", "alert", "emerg", "emergency", "60"},
}

// parsingOperators are the operators after the container parser; none
// when nothing is parsed.
func parsingOperators(l LogParsing) []any {
	if l.IsZero() {
		return nil
	}
	names := l.containerNames()
	if len(names) == 0 {
		return branch("default/", l.Default, "")
	}
	router := map[string]any{"type": "router", "id": routerOperatorID}
	var routes, ops []any
	for _, name := range names {
		p := l.Containers[name]
		target := joinOperatorID
		if !p.IsZero() {
			prefix := "container/" + name + "/"
			b := branch(prefix, p, joinOperatorID)
			target = b[0].(map[string]any)["id"].(string)
			ops = append(ops, b...)
		}
		routes = append(routes, map[string]any{
			"expr":   `resource["k8s.container.name"] == ` + strconv.Quote(name),
			"output": target,
		})
	}
	router["routes"] = routes
	router["default"] = joinOperatorID
	if !l.Default.IsZero() {
		b := branch("default/", l.Default, joinOperatorID)
		router["default"] = b[0].(map[string]any)["id"].(string)
		ops = append(ops, b...)
	}
	out := append([]any{router}, ops...)
	return append(out, map[string]any{"type": "noop", "id": joinOperatorID})
}

// branch is one Parsing's operators, their IDs prefixed, the last one
// sending to output ("" for the next operator).
func branch(prefix string, p Parsing, output string) []any {
	var ops []any
	add := func(id string, op map[string]any) {
		op["id"] = prefix + id
		ops = append(ops, op)
	}
	if p.Multiline != "" {
		multilineOperators(p.Multiline, add)
	}
	if p.Parser != "" {
		parserOperators(p.Parser, add)
	}
	if output != "" {
		ops[len(ops)-1].(map[string]any)["output"] = output
	}
	return ops
}

func multilineOperators(v string, add func(string, map[string]any)) {
	add("source", map[string]any{
		"type":  "add",
		"field": sourceAttr,
		"value": `EXPR(attributes["log.file.path"] + " " + attributes["log.iostream"])`,
	})
	recombine := func(flush string) map[string]any {
		return map[string]any{
			"type":              "recombine",
			"combine_field":     "body",
			"source_identifier": sourceAttr,
			// The first line's time and attributes.
			"overwrite_with":     "oldest",
			"force_flush_period": flush,
			"max_log_size":       MultilineMaxBytes,
			// No line count limit: a Java StackOverflowError has 1024
			// frames; the byte limit bounds a record.
			"max_batch_size": 0,
		}
	}
	if re, ok := strings.CutPrefix(v, RegexPrefix); ok {
		first := recombine(MultilineFlushPeriod.String())
		first["is_first_entry"] = "body matches " + exprString(re)
		// Lines before the first match stay records of their own, so
		// that a regex that never matches changes nothing.
		first["max_unmatched_batch_size"] = 1
		add("multiline", first)
	} else {
		preset := multilinePresets[v]
		first := recombine(MultilineFlushPeriod.String())
		isFirst := "not (body matches " + exprString(`^(?:\s|$|`+preset.continues+`)`) + ")"
		if preset.continues == "" {
			isFirst = "not (body matches " + exprString(`^(?:\s|$)`) + ")"
		}
		if preset.starts != "" {
			isFirst = "body matches " + exprString(preset.starts) + " or " + isFirst
		}
		first["is_first_entry"] = isFirst
		add("multiline", first)
		if preset.joinsNext != "" {
			chain := recombine(multilineChainFlushPeriod.String())
			chain["is_last_entry"] = "not (body matches " + exprString(preset.joinsNext) + ")"
			add("multiline-chain", chain)
		}
	}
	add("source-remove", map[string]any{"type": "remove", "field": sourceAttr, "on_error": "send_quiet"})
}

func parserOperators(v string, add func(string, map[string]any)) {
	parser := map[string]any{"parse_from": "body", "parse_to": "attributes", "on_error": "send_quiet"}
	switch v {
	case "json":
		parser["type"] = "json_parser"
	case "logfmt":
		// Pairs split at whitespace outside quotes, key and value at =.
		parser["type"] = "key_value_parser"
		parser["delimiter"] = "="
	default:
		parser["type"] = "regex_parser"
		parser["regex"] = literal(strings.TrimPrefix(v, RegexPrefix))
	}
	add("parser", parser)

	// Severity: from the first severity field present.
	add("severity", map[string]any{
		"type":     "add",
		"if":       "(" + firstOf(SeverityFields) + ") != nil",
		"field":    severityAttr,
		"value":    "EXPR(" + firstOf(SeverityFields) + ")",
		"on_error": "send_quiet",
	})
	add("severity-parser", map[string]any{
		"type":       "severity_parser",
		"if":         severityAttr + " != nil",
		"parse_from": severityAttr,
		"preset":     "none",
		"mapping":    severityMapping,
		"on_error":   "send_quiet",
	})
	add("severity-remove", map[string]any{"type": "remove", "if": severityAttr + " != nil", "field": severityAttr})

	// Time: the first time field present, an RFC 3339 text or an epoch
	// number in seconds, milliseconds, microseconds or nanoseconds (told
	// apart by size, and brought to nanoseconds); a record without one,
	// or with one that does not parse, keeps its CRI time.
	first := firstOf(TimeFields)
	add("time", map[string]any{
		"type":  "add",
		"if":    "(" + first + ") != nil",
		"field": timeAttr,
		"value": "EXPR(let t = " + first + `; type(t) in ["int", "float"] ? ` +
			`(t < 1e11 ? t * 1e9 : t < 1e14 ? t * 1e6 : t < 1e17 ? t * 1e3 : t) : t)`,
		"on_error": "send_quiet",
	})
	add("time-text", map[string]any{
		"type":        "time_parser",
		"if":          `type(` + timeAttr + `) == "string"`,
		"parse_from":  timeAttr,
		"layout_type": "gotime",
		"layout":      "2006-01-02T15:04:05Z07:00",
		"on_error":    "send_quiet",
	})
	add("time-number", map[string]any{
		"type":        "time_parser",
		"if":          `type(` + timeAttr + `) in ["int", "float"]`,
		"parse_from":  timeAttr,
		"layout_type": "epoch",
		"layout":      "ns",
		"on_error":    "send_quiet",
	})
	add("time-remove", map[string]any{"type": "remove", "if": timeAttr + " != nil", "field": timeAttr})

	// Trace context: trace_id/span_id/trace_flags (OpenTelemetry's log
	// bridges, pino, structlog), else traceId/spanId/traceFlags (Spring
	// Boot, Micrometer). A trace parser clears what its fields lack, so
	// each runs only when its trace ID is there.
	for _, names := range [][3]string{{"traceId", "spanId", "traceFlags"}, {"trace_id", "span_id", "trace_flags"}} {
		id := "trace"
		if names[0] == "traceId" {
			id = "trace-camel"
		}
		add(id, map[string]any{
			"type":        "trace_parser",
			"if":          attr(names[0]) + " != nil",
			"trace_id":    map[string]any{"parse_from": attr(names[0])},
			"span_id":     map[string]any{"parse_from": attr(names[1])},
			"trace_flags": map[string]any{"parse_from": attr(names[2])},
			"on_error":    "send_quiet",
		})
	}
}

// firstOf is an expression for the first of the attributes that is present.
func firstOf(names []string) string {
	fields := make([]string, len(names))
	for i, name := range names {
		fields[i] = attr(name)
	}
	return strings.Join(fields, " ?? ")
}

// attr is the field of a top-level attribute, written so that any name
// works.
func attr(name string) string { return `attributes[` + strconv.Quote(name) + `]` }

// exprString is s as a string literal of the expression language (it reads
// Go's escapes), with $ escaped for the collector's config expansion.
func exprString(s string) string { return literal(strconv.Quote(s)) }
