package tee

import (
	"testing"
	"time"
)

func TestClockStampsAreFixedWidthUTCAndNeverGoBack(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 7200)),
		time.Date(2026, 1, 2, 1, 4, 5, 0, time.UTC),              // same second, earlier nanos: held
		time.Date(2026, 1, 2, 1, 4, 6, 120000000, time.UTC),      // next second
		time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC), // the clock stepped back
		time.Date(2026, 1, 2, 1, 4, 7, 999999999, time.UTC),
	}
	want := []string{
		"2026-01-02T01:04:05.000000006Z",
		"2026-01-02T01:04:05.000000006Z",
		"2026-01-02T01:04:06.120000000Z",
		"2026-01-02T01:04:06.120000000Z",
		"2026-01-02T01:04:07.999999999Z",
	}
	i := 0
	c := newClock(func() time.Time { t := times[i]; i++; return t })
	for k := range times {
		got := string(c.stamp())
		if got != want[k] {
			t.Errorf("stamp %d = %s, want %s", k, got, want[k])
		}
		if _, err := time.Parse(time.RFC3339Nano, got); err != nil {
			t.Errorf("stamp %s does not parse as RFC3339Nano: %v", got, err)
		}
	}
}
