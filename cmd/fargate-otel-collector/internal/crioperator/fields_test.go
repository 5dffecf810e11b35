package crioperator

import (
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/entry"
)

// FuzzLine compares the two operators on any one line (of an app log).
func FuzzLine(f *testing.F) {
	for _, s := range []string{
		ts1 + " stdout F hello",
		ts1 + " stderr P piece",
		"2026-12-03T15:04:05.5Z stdout F x",
		"0000-01-01T00:00:00Z stdout F year 0",
		"2026-02-29T00:00:00Z stdout F not a leap year",
		"xZ stdout F",
		"Z stdout F",
		"a^Z stdout F",
		ts1 + " stdout  F",
		ts1 + " stdout F\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		compare(t, [][]*entry.Entry{lines(appLog, line, ts2+" stdout F next")}, false)
	})
}

// FuzzPath compares the two operators' k8s.* attributes on any path.
func FuzzPath(f *testing.F) {
	for _, p := range []string{
		appLog,
		podDir + "/app/0.log.20261203-150405",
		`C:\pods\ns_pod_0a-1\c\0.log`,
		"/a/b_c/ns_pod_abc/x/y/0.log",
		"/x/ns/_pod_0a/c/0.log",
		"/x\n/ns_pod_0a/c/0.log",
		"ns_pod_0a/c/0.log",
		"/ns_pod_0a/c/0.log.12345678-123456",
		"/ns_pod_0a/c/0.log.12345678-12345",
		"/n_s_pod_0a/c/0.log",
		"",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		compare(t, [][]*entry.Entry{lines(path, ts1+" stdout F line", ts1+" stdout P piece ", ts2+" stdout F end")}, false)
	})
}

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-03T15:04:05Z", time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)},
		{"2026-12-03T15:04:05.1Z", time.Date(2026, 12, 3, 15, 4, 5, 100_000_000, time.UTC)},
		{"2026-12-03T15:04:05.123456789Z", time.Date(2026, 12, 3, 15, 4, 5, 123_456_789, time.UTC)},
		{"2024-02-29T23:59:59.999999999Z", time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC)},
		{"2026-12-03T15:04:05,5Z", time.Date(2026, 12, 3, 15, 4, 5, 500_000_000, time.UTC)},          // time.Parse's path
		{"2026-12-03T15:04:05.1234567891Z", time.Date(2026, 12, 3, 15, 4, 5, 123_456_789, time.UTC)}, // extra digits cut
	} {
		got, err := parseTime(c.in)
		if err != nil || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"2026-02-29T00:00:00Z", "2026-12-03T24:00:00Z", "2026-12-03T15:04:05", "xZ", "2026-12-03T15:04:05.Z"} {
		if got, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", bad, got)
		}
	}
	// Year 0: the current year, or the last when that is more than a week ahead.
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	if got := withYear(time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), now); got.Year() != 2025 {
		t.Errorf("withYear(31 December) on 2 January = %v, want 2025", got)
	}
	if got := withYear(time.Date(0, 1, 5, 0, 0, 0, 0, time.UTC), now); got.Year() != 2026 {
		t.Errorf("withYear(5 January) on 2 January = %v, want 2026", got)
	}
}

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		path string
		want podMeta
	}{
		{appLog, meta("shop", "web-0", "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e", "app", "0")},
		{podDir + "/app/12.log.20261203-150405", meta("shop", "web-0", "0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e", "app", "12")},
		{`C:\pods\ns_pod_0a-1\c\3.log`, meta("ns", "pod", "0a-1", "c", "3")},
		// As upstream's expression: the container may hold separators, the
		// namespace starts after the last separator that leaves it non-empty.
		{"/a/b_c/ns_pod_abc/x/y/0.log", meta("ns", "pod", "abc", "x/y", "0")},
		{"/x/ns/_pod_0a/c/0.log", meta("ns/", "pod", "0a", "c", "0")},
		{"/var/log/app.log", podMeta{}},
		{podDir + "/app/0.log.gz", podMeta{}},
		{podDir + "/app.v2/0.log", podMeta{}},
		{"ns_pod_0a/c/0.log", podMeta{}},
		{"", podMeta{}},
	} {
		if got := parsePath(c.path); got != c.want {
			t.Errorf("parsePath(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}

func meta(namespace, pod, uid, container, restart string) podMeta {
	return podMeta{ok: true, namespace: namespace, pod: pod, uid: uid, container: container, restartCount: restart}
}

func TestPathCacheIsBounded(t *testing.T) {
	c := newPathCache(4)
	for i := range 10 {
		c.lookup(podDir + "/app/" + string(rune('0'+i)) + ".log")
	}
	if n := len(c.byPath); n > 4 {
		t.Fatalf("the cache holds %d paths, more than its bound of 4", n)
	}
	if m := c.lookup(appLog); !m.ok || m.container != "app" {
		t.Fatalf("lookup after eviction = %+v", m)
	}
}
