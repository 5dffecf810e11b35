package crioperator

import (
	"strings"
	"time"
)

// criLine is one line of a CRI log file, as containerd writes it:
// `<time ending in Z> <stdout|stderr> <tag> <text>`. The fields are
// substrings of the line (nothing is copied).
type criLine struct {
	time, stream, logtag, log string
}

// parseCRI splits a line by hand, accepting exactly the lines that the
// upstream container operator's containerd expression accepts, with the
// same fields:
//
//   - time: one or more bytes other than ' ', '^' and 'Z', then 'Z'; so it
//     runs up to the first 'Z', which must come before any space;
//   - one space, then "stdout" or "stderr", then one space;
//   - the tag: everything up to the next space (possibly nothing);
//   - the text: what follows that space, which must hold no '\n' (the
//     expression's '.' does not match it); without a space, the text is
//     empty and the tag is the rest of the line.
//
// Bytes are compared as bytes: every byte the expression treats specially
// is ASCII, and ASCII bytes never occur inside a multi-byte UTF-8 sequence.
func parseCRI(s string) (criLine, bool) {
	z := strings.IndexAny(s, " ^Z")
	if z < 1 || s[z] != 'Z' {
		return criLine{}, false
	}
	rest := s[z+1:]
	if len(rest) < 8 || rest[0] != ' ' || rest[7] != ' ' {
		return criLine{}, false
	}
	stream := rest[1:7]
	switch stream {
	case "stdout":
		stream = "stdout" // the constant, so that no line's memory is kept for it
	case "stderr":
		stream = "stderr"
	default:
		return criLine{}, false
	}
	rest = rest[8:]
	sp := strings.IndexByte(rest, ' ')
	if sp < 0 {
		return criLine{time: s[:z+1], stream: stream, logtag: tag(rest)}, true
	}
	text := rest[sp+1:]
	if strings.IndexByte(text, '\n') >= 0 {
		return criLine{}, false
	}
	return criLine{time: s[:z+1], stream: stream, logtag: tag(rest[:sp]), log: text}, true
}

// tag returns the common tags as constants.
func tag(t string) string {
	switch t {
	case "F":
		return "F"
	case "P":
		return "P"
	}
	return t
}

// criTimeLayout is the layout upstream parses containerd times with (in
// UTC, the layout ending in 'Z'). Go accepts any number of fractional
// digits after the seconds with it, and a comma for the point.
const criTimeLayout = "2006-01-02T15:04:05.999Z"

// parseTime returns the time of a line as upstream does: the layout above
// in UTC, and a year 0 replaced by the current one (a year-less time, as
// the collector's time parser assumes). The fast path takes the form
// containerd writes (RFC 3339 in UTC, 0 to 9 fractional digits) without
// time.Parse; anything else goes through time.Parse, for the same result
// or the same refusal.
func parseTime(s string) (time.Time, error) {
	if t, ok := fastTime(s); ok {
		return t, nil
	}
	t, err := time.ParseInLocation(criTimeLayout, s, time.UTC)
	if err != nil {
		return time.Time{}, err
	}
	return withYear(t, time.Now()), nil
}

// fastTime parses YYYY-MM-DDTHH:MM:SS[.fffffffff]Z, with every field in
// range, and reports false for anything else (time.Parse then decides).
func fastTime(s string) (time.Time, bool) {
	n := len(s)
	if n < 20 || n > 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[n-1] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, false
	}
	nsec := 0
	if n > 20 {
		frac := s[19 : n-1]
		if len(frac) < 2 || frac[0] != '.' {
			return time.Time{}, false
		}
		f, ok := digits(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			f *= 10
		}
		nsec = f
	}
	if year == 0 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func digits(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int((m-1)%7%2)
}

// withYear gives a time of year 0 the current year, or last year's when
// that puts it more than a week ahead of now: what the collector's time
// parser does for layouts without a year.
func withYear(t, now time.Time) time.Time {
	if t.Year() > 0 {
		return t
	}
	d := time.Date(now.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	if d.After(now.AddDate(0, 0, 7)) {
		d = d.AddDate(-1, 0, 0)
	}
	return d
}
