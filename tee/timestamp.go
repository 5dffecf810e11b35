package tee

import "time"

// stampLen is the length of a CRI timestamp: RFC3339 with nine fraction
// digits in UTC, e.g. 2026-01-02T03:04:05.000000006Z. A fixed width keeps the
// file sortable as text; Go's RFC3339Nano parser and the collector accept it.
const stampLen = len("2006-01-02T15:04:05.000000000Z")

// clock makes CRI timestamps that never go backwards, so that a wall clock
// stepped back by NTP cannot reorder the file.
type clock struct {
	now    func() time.Time
	last   int64 // unix nanoseconds of the last stamp
	second int64 // the second whose date and time are in buf
	buf    [stampLen]byte
}

func newClock(now func() time.Time) *clock {
	if now == nil {
		now = time.Now
	}
	return &clock{now: now, second: -1}
}

// stamp returns the timestamp of now. The slice is valid until the next call.
func (c *clock) stamp() []byte {
	ns := c.now().UnixNano()
	if ns < c.last {
		ns = c.last
	}
	c.last = ns
	sec, frac := ns/1e9, ns%1e9
	if sec != c.second {
		c.second = sec
		time.Unix(sec, 0).UTC().AppendFormat(c.buf[:0], "2006-01-02T15:04:05.")
	}
	for i := stampLen - 2; i >= stampLen-10; i-- {
		c.buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	c.buf[stampLen-1] = 'Z'
	return c.buf[:]
}
