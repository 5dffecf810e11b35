package annotations

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fargate-otel/fargate-otel/logrotate"
)

// LogRateLimit is a log budget for wrapped containers: lines per second and
// bytes per second that go to the log file, each with an optional burst.
// Lines over it leave the file (and so the collector) only; the
// passthrough, and kubectl logs, keeps everything. It takes the forms of
// the log parsing annotations:
//
//	1000/s                   every wrapped container: 1000 lines/s, burst one second's worth
//	1000/s:5000 1Mi/s:4Mi    1000 lines/s (burst 5000) and 1 MiB/s (burst 4 MiB)
//	web=1000/s,worker=256Ki/s per container; the others have no limit
//	*=1000/s,envoy=none      every container, with exceptions
//
// A rate with a size unit (Ki, Mi, Gi, or B for bytes) is bytes, a plain
// number lines.
const LogRateLimit = Prefix + "log-rate-limit"

// RateLimit is one container's log budget, in the wrapper's terms (its
// --rate-limit-* flags). A zero rate is no limit of that kind; a zero burst
// is one second of the rate.
type RateLimit struct {
	Lines, LinesBurst int64
	Bytes, BytesBurst int64
}

// Enabled says whether any limit is set.
func (r RateLimit) Enabled() bool { return r.Lines > 0 || r.Bytes > 0 }

// String is the limit in the annotation's form.
func (r RateLimit) String() string {
	var terms []string
	if r.Lines > 0 {
		t := strconv.FormatInt(r.Lines, 10) + "/s"
		if r.LinesBurst > 0 {
			t += ":" + strconv.FormatInt(r.LinesBurst, 10)
		}
		terms = append(terms, t)
	}
	if r.Bytes > 0 {
		t := formatBytes(r.Bytes) + "/s"
		if r.BytesBurst > 0 {
			t += ":" + formatBytes(r.BytesBurst)
		}
		terms = append(terms, t)
	}
	if len(terms) == 0 {
		return None
	}
	return strings.Join(terms, " ")
}

// formatBytes writes a byte count with a unit, so that it reads back as bytes.
func formatBytes(n int64) string {
	s := logrotate.FormatSize(n)
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return s + "B"
	}
	return s
}

// rateLimitForm is what a bad value is told to write.
const rateLimitForm = `write lines per second as 1000/s, bytes per second with a unit as 1Mi/s (Ki, Mi, Gi, or B for bytes), each with an optional burst after a colon (1000/s:5000), both apart by a space (1000/s 1Mi/s)`

// ParseRateLimit reads one container's value of LogRateLimit.
func ParseRateLimit(v string) (RateLimit, error) {
	var r RateLimit
	terms := strings.Fields(v)
	if len(terms) == 0 {
		return r, fmt.Errorf("empty; %s", rateLimitForm)
	}
	if len(terms) > 2 {
		return r, fmt.Errorf("%q has more than two rates; %s", v, rateLimitForm)
	}
	for _, t := range terms {
		rate, burst, hasBurst := strings.Cut(t, ":")
		rate = strings.TrimSuffix(rate, "/s")
		isBytes := strings.ContainsAny(rate, "KMGB")
		parse := parseLines
		if isBytes {
			parse = parseBytes
		}
		n, err := parse(rate)
		if err != nil {
			return RateLimit{}, fmt.Errorf("rate %q: %w; %s", t, err, rateLimitForm)
		}
		var b int64
		if hasBurst {
			if b, err = parse(burst); err != nil {
				return RateLimit{}, fmt.Errorf("burst %q: %w; %s", t, err, rateLimitForm)
			}
		}
		if isBytes {
			if r.Bytes > 0 {
				return RateLimit{}, fmt.Errorf("%q has two byte rates; %s", v, rateLimitForm)
			}
			r.Bytes, r.BytesBurst = n, b
		} else {
			if r.Lines > 0 {
				return RateLimit{}, fmt.Errorf("%q has two line rates; %s", v, rateLimitForm)
			}
			r.Lines, r.LinesBurst = n, b
		}
	}
	return r, nil
}

// parseLines reads a positive whole number of lines.
func parseLines(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a whole number of lines above 0")
	}
	return n, nil
}

// parseBytes reads a positive size with a unit (B for plain bytes).
func parseBytes(s string) (int64, error) {
	if strings.HasSuffix(s, "B") && !strings.HasSuffix(s, "iB") {
		s = strings.TrimSuffix(s, "B")
	}
	n, err := logrotate.ParseSize(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a size above 0 such as 512Ki, 1Mi or 4096B")
	}
	return n, nil
}

// checkRateLimit is ParseRateLimit as the per-container parser's check.
func checkRateLimit(v string) error {
	_, err := ParseRateLimit(v)
	return err
}

// parseLogRateLimit reads the value of LogRateLimit into limits by
// container name (AllContainers for every container), with a warning for
// each entry it ignores.
func parseLogRateLimit(v string) (map[string]RateLimit, []string) {
	forms := `write one value for every container (e.g. 1000/s), or values by container: web=...,worker=... (* for the others, none for no limit)`
	values, warns := parsePerContainer(LogRateLimit, v, checkRateLimit, forms, "no limit")
	if len(values) == 0 {
		return nil, warns
	}
	out := make(map[string]RateLimit, len(values))
	for name, value := range values {
		var r RateLimit
		if value != "" {
			r, _ = ParseRateLimit(value) // checked by parsePerContainer
		}
		out[name] = r
	}
	return out, warns
}
