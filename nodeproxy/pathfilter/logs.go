package pathfilter

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LogQuery is the validated query of a containerLogs request: the subset of
// the kubelet's PodLogOptions a log follower needs. Unset options are the
// kubelet's defaults.
type LogQuery struct {
	Follow, Timestamps, Previous bool
	// SinceTime is set when the query has sinceTime.
	SinceTime *time.Time
	// TailLines and LimitBytes are set when the query has them.
	TailLines  *int64
	LimitBytes *int64
	// raw is the query exactly as validated, forwarded unchanged.
	raw string
}

// Raw is the query string as it arrived (and is forwarded), without "?".
func (q LogQuery) Raw() string { return q.raw }

// Log option keys, spelled as the kubelet reads them.
const (
	keyFollow     = "follow"
	keyTimestamps = "timestamps"
	keyPrevious   = "previous"
	keySinceTime  = "sinceTime"
	keyTailLines  = "tailLines"
	keyLimitBytes = "limitBytes"

	// maxTailLines and maxLimitBytes keep the numbers far from any
	// overflow in the kubelet (it takes int64).
	maxTailLines  = 1_000_000_000
	maxLimitBytes = 1 << 40
)

const logKeys = "follow, timestamps, previous, sinceTime, tailLines, limitBytes"

// ParseLogQuery checks a raw query string (after "?", never decoded):
// "&"-separated key=value pairs, each key one of follow, timestamps,
// previous (values exactly "true" or "false"), sinceTime (an RFC 3339 UTC
// time ending in "Z", with up to nine fraction digits), tailLines (0 or a
// decimal without leading zeros) and limitBytes (a positive decimal without
// leading zeros), each at most once. Anything else is refused: other keys
// (sinceSeconds, tail, stream, ...), repeated keys, empty pairs, keys without
// a value, other spellings of a value ("1", "True", "+5", "007"), and
// characters that a decoder could read two ways ("+", ";", "%").
func ParseLogQuery(raw string) (LogQuery, error) {
	q := LogQuery{raw: raw}
	if raw == "" {
		return LogQuery{}, fmt.Errorf("%w: empty query string: leave out the \"?\" or give log options (%s)", ErrRefused, logKeys)
	}
	seen := map[string]bool{}
	for _, pair := range strings.Split(raw, "&") {
		key, value, ok := strings.Cut(pair, "=")
		if !ok || key == "" {
			return LogQuery{}, fmt.Errorf("%w: query part %q: expected key=value with a key of %s", ErrRefused, clip(pair), logKeys)
		}
		if seen[key] {
			return LogQuery{}, fmt.Errorf("%w: query key %q given twice", ErrRefused, clip(key))
		}
		seen[key] = true
		var err error
		switch key {
		case keyFollow:
			q.Follow, err = parseBool(value)
		case keyTimestamps:
			q.Timestamps, err = parseBool(value)
		case keyPrevious:
			q.Previous, err = parseBool(value)
		case keySinceTime:
			var t time.Time
			t, err = parseSinceTime(value)
			q.SinceTime = &t
		case keyTailLines:
			var n int64
			n, err = parseDecimal(value, 0, maxTailLines)
			q.TailLines = &n
		case keyLimitBytes:
			var n int64
			n, err = parseDecimal(value, 1, maxLimitBytes)
			q.LimitBytes = &n
		default:
			return LogQuery{}, fmt.Errorf("%w: query key %q is not served: only %s", ErrRefused, clip(key), logKeys)
		}
		if err != nil {
			return LogQuery{}, fmt.Errorf("%w: query %s=%q: %w", ErrRefused, key, clip(value), err)
		}
	}
	return q, nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("expected true or false")
}

// parseDecimal reads digits only: no sign, no leading zeros, no spaces.
func parseDecimal(v string, lo, hi int64) (int64, error) {
	bad := fmt.Errorf("expected a whole number from %d to %d, in plain digits without leading zeros", lo, hi)
	if v == "" || len(v) > 13 || (len(v) > 1 && v[0] == '0') {
		return 0, bad
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, bad
	}
	return n, nil
}

// parseSinceTime reads YYYY-MM-DDTHH:MM:SS[.fraction]Z. A numeric offset
// would need a "+", which a query decoder reads as a space; UTC says the same
// in one spelling.
func parseSinceTime(v string) (time.Time, error) {
	bad := fmt.Errorf("expected an RFC 3339 time in UTC such as 2006-01-02T15:04:05Z or 2006-01-02T15:04:05.999999999Z")
	const base = len("2006-01-02T15:04:05")
	if len(v) < base+1 || len(v) > base+11 || v[len(v)-1] != 'Z' {
		return time.Time{}, bad
	}
	for i := 0; i < len(v)-1; i++ {
		c := v[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return time.Time{}, bad
			}
		case 10:
			if c != 'T' {
				return time.Time{}, bad
			}
		case 13, 16:
			if c != ':' {
				return time.Time{}, bad
			}
		case base:
			if c != '.' {
				return time.Time{}, bad
			}
		default:
			if c < '0' || c > '9' {
				return time.Time{}, bad
			}
		}
	}
	if len(v) == base+2 { // "." with no digit
		return time.Time{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, bad
	}
	return t, nil
}
