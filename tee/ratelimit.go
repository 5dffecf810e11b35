package tee

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fargate-otel/fargate-otel/logrotate"
)

// Environment variables of the rate limit, read when its flags are not given.
const (
	EnvRateLimitLines      = "FARGATE_OTEL_RATE_LIMIT_LINES"
	EnvRateLimitLinesBurst = "FARGATE_OTEL_RATE_LIMIT_LINES_BURST"
	EnvRateLimitBytes      = "FARGATE_OTEL_RATE_LIMIT_BYTES"
	EnvRateLimitBytesBurst = "FARGATE_OTEL_RATE_LIMIT_BYTES_BURST"
)

// RateLimit is a container's log budget: how many lines and bytes per second
// may go to the file, each with a burst (token buckets). Lines over it leave
// the file only: passthrough, and so kubectl logs, always has everything.
// A zero rate means no limit of that kind.
type RateLimit struct {
	Lines      int64 // lines per second
	LinesBurst int64 // lines; 0: one second's worth
	Bytes      int64 // bytes per second, of the lines' text and newline
	BytesBurst int64 // bytes; 0: one second's worth
}

// Enabled says whether any limit is set.
func (r RateLimit) Enabled() bool { return r.Lines > 0 || r.Bytes > 0 }

// Check says what is wrong with the limit as given.
func (r RateLimit) Check() error {
	switch {
	case r.Lines < 0 || r.LinesBurst < 0 || r.Bytes < 0 || r.BytesBurst < 0:
		return fmt.Errorf("rate limits and bursts cannot be negative")
	case r.LinesBurst > 0 && r.Lines == 0:
		return fmt.Errorf("a line burst (%d) without a line rate: set --rate-limit-lines too", r.LinesBurst)
	case r.BytesBurst > 0 && r.Bytes == 0:
		return fmt.Errorf("a byte burst (%s) without a byte rate: set --rate-limit-bytes too", logrotate.FormatSize(r.BytesBurst))
	}
	return nil
}

// withDefaults fills the bursts left at 0 with one second of the rate.
func (r RateLimit) withDefaults() RateLimit {
	if r.Lines > 0 && r.LinesBurst <= 0 {
		r.LinesBurst = r.Lines
	}
	if r.Bytes > 0 && r.BytesBurst <= 0 {
		r.BytesBurst = r.Bytes
	}
	return r
}

// String describes the limit as the report in the file says it.
func (r RateLimit) String() string {
	r = r.withDefaults()
	var parts []string
	if r.Lines > 0 {
		parts = append(parts, fmt.Sprintf("%d lines/s, burst %d", r.Lines, r.LinesBurst))
	}
	if r.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("%s/s, burst %s", logrotate.FormatSize(r.Bytes), logrotate.FormatSize(r.BytesBurst)))
	}
	return strings.Join(parts, "; ")
}

// A stretch of lines left out is reported in the file once the rate is back
// under the budget: at the first line kept after reportQuiet without a line
// left out. While the app stays over the budget it is reported at the latest
// every reportEvery, so that a reader of the file learns of the gap in time.
const (
	reportQuiet = time.Second
	reportEvery = 10 * time.Second
)

// bucket is a token bucket over the reader's clock (unix nanoseconds). A
// bucket without a limit holds +Inf tokens for ever, so that the checks need
// no special case.
type bucket struct {
	rate, burst, tokens float64 // rate per nanosecond
}

func newBucket(rate, burst int64) bucket {
	if rate <= 0 {
		return bucket{burst: math.Inf(1), tokens: math.Inf(1)}
	}
	return bucket{rate: float64(rate) / 1e9, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) refill(elapsed int64) {
	b.tokens = min(b.burst, b.tokens+float64(elapsed)*b.rate)
}

// limited is the recorder of the file when a rate limit is set: it keeps or
// leaves out each line, and passes the kept ones to the sink. Without a
// limit the sink is the recorder, so the common case pays nothing. It runs on
// the reader's goroutine, as the sink's framing side does.
type limited struct {
	sink     *sink
	clock    *clock // the stamp of the chunk being framed is "now"
	limit    RateLimit
	lineB    bucket
	byteB    bucket
	at       int64 // unix ns the buckets were last refilled at; 0 before the first line
	open     [2]bool
	keep     [2]bool
	left     int64 // lines left out since `since`, not yet reported
	leftB    int64
	since    int64 // unix ns of the first line left out of this stretch
	lastLeft int64
	warned   bool

	totalLeft int64 // for the end-of-run summary
}

func newLimited(s *sink, clk *clock, r RateLimit) *limited {
	r = r.withDefaults()
	return &limited{sink: s, clock: clk, limit: r, lineB: newBucket(r.Lines, r.LinesBurst), byteB: newBucket(r.Bytes, r.BytesBurst)}
}

// quick keeps a whole line of size bytes in the common case: no line in
// pieces open, no stretch left out to report, the same instant as the last
// line (the buckets are fresh) and tokens on hand. Small enough to inline.
func (l *limited) quick(st Stream, size int) bool {
	f := float64(size)
	if l.at != l.clock.last || l.open[st] || l.left != 0 || l.lineB.tokens < 1 || l.byteB.tokens < f {
		return false
	}
	l.lineB.tokens--
	l.byteB.tokens -= f
	return true
}

// admit decides for one record of stream st: size is its bytes (text, and
// the newline for the end of a line). A line in P pieces is decided at its
// first piece and kept or left out whole: the later pieces of a kept line
// are charged to the byte bucket, which may go below zero, so that the
// average rate still holds. ts is the record's stamp, for the report.
func (l *limited) admit(ts []byte, st Stream, partial bool, size int) bool {
	if l.open[st] {
		l.open[st] = partial
		if l.keep[st] {
			l.byteB.tokens -= float64(size)
			return true
		}
		l.leftB += int64(size)
		return false
	}
	l.open[st] = partial
	now := l.clock.last
	ok := l.take(now, 1, size)
	l.keep[st] = ok
	if !ok {
		if l.left == 0 {
			l.since = now
		}
		l.left++
		l.leftB += int64(size)
		l.lastLeft = now
		l.totalLeft++
		if !l.warned {
			l.warned = true
			l.sink.log.Warn("the log rate limit is reached: lines over it are left out of the log file (they still pass through); the file will say how many", "limit", l.limit.String())
		}
		return false
	}
	if l.left > 0 && (now-l.lastLeft >= int64(reportQuiet) || now-l.since >= int64(reportEvery)) {
		l.report(ts)
	}
	return true
}

// take takes n lines of size bytes from the buckets, if both have them. A
// full byte bucket lets one line through whatever its size, so that a line
// larger than the burst is not left out for ever.
func (l *limited) take(now, n int64, size int) bool {
	if l.at == 0 {
		l.at = now // the buckets start full at the first line
	}
	if now > l.at {
		l.lineB.refill(now - l.at)
		l.byteB.refill(now - l.at)
		l.at = now
	}
	f := float64(size)
	if l.lineB.tokens < float64(n) || (l.byteB.tokens < f && (n != 1 || l.byteB.tokens < l.byteB.burst)) {
		return false
	}
	l.lineB.tokens -= float64(n)
	l.byteB.tokens -= f
	return true
}

// report writes the stretch left out as one line of the wrapper's in the
// file, in order with the lines around it.
func (l *limited) report(ts []byte) {
	if l.left == 0 {
		return
	}
	since := time.Unix(0, l.since).UTC().Format(time.RFC3339Nano)
	l.sink.say(ts, fmt.Sprintf("%d log lines (%d bytes) were left out of this file since %s: over the log rate limit (%s); they still passed through to stdout and stderr (kubectl logs)",
		l.left, l.leftB, since, l.limit))
	l.left, l.leftB = 0, 0
}

// finish reports what is left at the end of the run.
func (l *limited) finish(ts []byte) {
	l.report(ts)
	if l.totalLeft > 0 {
		l.sink.log.Warn("log lines left out of the log file by the rate limit in total", "lines", l.totalLeft, "limit", l.limit.String())
	}
}

func (l *limited) record(ts []byte, st Stream, partial bool, text []byte) {
	size := len(text)
	if !partial {
		size++
	}
	if l.admit(ts, st, partial, size) {
		l.sink.record(ts, st, partial, text)
	}
}

func (l *limited) full(st Stream, header, line []byte) {
	if l.quick(st, len(line)) || l.admit(header[:stampLen], st, false, len(line)) {
		l.sink.full(st, header, line)
	}
}

// lines decides for each line of a raw run; when the buckets hold the whole
// run, at once.
func (l *limited) lines(st Stream, text []byte) {
	if !l.open[st] && l.left == 0 && l.at != 0 && l.take(l.clock.last, int64(bytes.Count(text, []byte{'\n'})), len(text)) {
		l.sink.lines(st, text)
		return
	}
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n') + 1
		if i == 0 {
			i = len(text)
		}
		if l.admit(nil, st, false, i) {
			l.sink.lines(st, text[:i])
		}
		text = text[i:]
	}
}

// ParseRate reads a whole number of lines per second (a "/s" suffix is
// allowed).
func ParseRate(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("rate %q: write a whole number of lines per second, for example 1000", s)
	}
	return n, nil
}
