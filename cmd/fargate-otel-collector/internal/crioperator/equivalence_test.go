package crioperator

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/entry"
)

const (
	podDir = "/var/log/pods/shop_web-0_0f3c9a52-6a1e-4f37-9d0e-2b1f3a4c5d6e"
	appLog = podDir + "/app/0.log"
	ts1    = "2026-12-03T15:04:05.123456789Z"
	ts2    = "2026-12-03T15:04:06Z"
)

// compare feeds the same batches to upstream's container operator and to
// ours and fails t where the records differ. Where a P piece of one stream
// is pending on a path when a line of the other stream comes (which is
// where the two deliberately differ: upstream joins them), the records are
// compared stream by stream instead: ours, of one stream, must be what
// upstream makes of that stream's lines alone; and the lines that are not
// CRI must come out the same.
func compare(t testing.TB, batches [][]*entry.Entry, single bool) {
	t.Helper()
	upOut, ourOut := &sink{}, &sink{}
	upFed, upStop := run(t, upstreamOp(t, upOut), upOut, batches, single)
	ourFed, ourStop := run(t, ourOp(t, ourOut, noFlush), ourOut, batches, single)
	if !crossesStreams(batches) {
		sameRecords(t, "records while fed", upFed, ourFed, false)
		// Upstream flushes its pending pieces at Stop in map order.
		sameRecords(t, "records at Stop", upStop, ourStop, true)
		return
	}
	for _, stream := range []string{"stdout", "stderr", ""} {
		only := filter(batches, func(e *entry.Entry) bool { return streamOf(e) == stream })
		upOut := &sink{}
		upFed, upStop := run(t, upstreamOp(t, upOut), upOut, only, single)
		mine := func(es []*entry.Entry) []*entry.Entry {
			var out []*entry.Entry
			for _, e := range es {
				if recordStream(e) == stream {
					out = append(out, e)
				}
			}
			return out
		}
		sameRecords(t, "records while fed, stream "+stream, upFed, mine(ourFed), false)
		sameRecords(t, "records at Stop, stream "+stream, upStop, mine(ourStop), true)
	}
}

// streamOf is the stream of a line ("" when it is not CRI).
func streamOf(e *entry.Entry) string {
	if s, ok := e.Body.(string); ok {
		if l, ok := parseCRI(s); ok {
			return l.stream
		}
	}
	return ""
}

// recordStream is the stream a record came from, whatever step it failed.
func recordStream(e *entry.Entry) string {
	for _, k := range []string{attrStream, "stream"} {
		if s, ok := e.Attributes[k].(string); ok {
			return s
		}
	}
	return ""
}

func filter(batches [][]*entry.Entry, keep func(*entry.Entry) bool) [][]*entry.Entry {
	out := make([][]*entry.Entry, 0, len(batches))
	for _, b := range batches {
		var nb []*entry.Entry
		for _, e := range b {
			if keep(e) {
				nb = append(nb, e)
			}
		}
		out = append(out, nb)
	}
	return out
}

// crossesStreams tells whether a line of one stream comes while a piece of
// the other is pending on the same path (a rough model of the joining,
// enough to choose the comparison: the per-stream one holds either way).
func crossesStreams(batches [][]*entry.Entry) bool {
	open := map[string]string{} // path -> stream with a piece pending
	for _, b := range batches {
		for _, e := range b {
			s, ok := e.Body.(string)
			if !ok {
				continue
			}
			l, ok := parseCRI(s)
			if !ok {
				continue
			}
			if _, err := parseTime(l.time); err != nil {
				continue
			}
			p, _ := e.Attributes[attrPath].(string)
			if !parsePath(p).ok {
				continue
			}
			if st, pending := open[p]; pending && st != l.stream {
				return true
			}
			if l.logtag == "F" {
				delete(open, p)
			} else {
				open[p] = l.stream
			}
		}
	}
	return false
}

// lines makes one batch of CRI lines on a path, observed a microsecond apart.
func lines(path any, ls ...string) []*entry.Entry {
	base := time.Now()
	out := make([]*entry.Entry, len(ls))
	for i, l := range ls {
		out[i] = newEntry(path, l, base.Add(time.Duration(i)*time.Microsecond))
	}
	return out
}

func TestSameRecordsAsUpstream(t *testing.T) {
	big := strings.Repeat("x", 16<<10)
	huge := strings.Repeat("y", 1<<20+5)
	var many []string
	for range 70 { // 70 pieces of 16 KiB: past 1 MiB before the F
		many = append(many, ts1+" stdout P "+big)
	}
	many = append(many, ts2+" stdout F end")
	cases := []struct {
		name    string
		batches [][]*entry.Entry
	}{
		{"complete lines of both streams", [][]*entry.Entry{lines(appLog,
			ts1+" stdout F hello world",
			ts2+" stderr F oops",
			ts1+" stdout F   leading and trailing spaces  ")}},
		{"pieces joined until F", [][]*entry.Entry{lines(appLog,
			ts1+" stdout P part one, ",
			ts2+" stdout P part two, ",
			ts2+" stdout F the end")}},
		{"pieces across batches", [][]*entry.Entry{
			lines(appLog, ts1+" stderr P first "),
			lines(appLog, ts2+" stderr P second "),
			lines(appLog, ts2+" stderr F third")}},
		{"a piece pending at Stop", [][]*entry.Entry{lines(appLog,
			ts1+" stdout F whole",
			ts2+" stdout P no newline at the end")}},
		{"pieces of two files", [][]*entry.Entry{
			lines(appLog, ts1+" stdout P a-"),
			lines(podDir+"/sidecar/3.log", ts1+" stdout P b-"),
			lines(appLog, ts2+" stdout F a"),
			lines(podDir+"/sidecar/3.log", ts2+" stdout F b")}},
		{"empty texts", [][]*entry.Entry{lines(appLog,
			ts1+" stdout F ",
			ts1+" stdout F",
			ts1+" stdout P",
			ts1+" stdout P ",
			ts1+" stdout F ",
			ts1+" stderr ",
			"")}},
		{"odd tags", [][]*entry.Entry{lines(appLog,
			ts1+" stdout X held like a piece ",
			ts1+" stdout F:1 also a piece ",
			ts1+" stdout F done",
			ts1+" stdout Fnotag",
			ts1+" stdout  two spaces: an empty tag")}},
		{"a 1 MiB line", [][]*entry.Entry{lines(appLog, ts1+" stdout F "+huge, ts2+" stdout F after")}},
		{"a 1 MiB piece", [][]*entry.Entry{lines(appLog, ts1+" stdout P "+huge, ts2+" stdout F after")}},
		{"pieces past max_log_size", [][]*entry.Entry{lines(appLog, many...)}},
		{"rotated backups", [][]*entry.Entry{
			lines(podDir+"/app/0.log.20261203-150405", ts1+" stdout F from the backup"),
			lines(podDir+"/app/12.log.20261203-150406", ts1+" stdout P piece in a backup "),
			lines(podDir+"/app/12.log.20261203-150406", ts1+" stdout F end")}},
		{"paths not in the kubelet layout", [][]*entry.Entry{
			lines("/var/log/app.log", ts1+" stdout F no pod dir"),
			lines(podDir+"/app/0.log.gz", ts1+" stdout F compressed name"),
			lines(podDir+"/app/0.log.2026120-150405", ts1+" stdout F short date"),
			lines(podDir+"/app.v2/0.log", ts1+" stdout F dot in the container"),
			lines("/var/log/pods/shop_web-0_NOTHEX/app/0.log", ts1+" stdout F not a uid"),
			lines(podDir+"/app/x.log", ts1+" stdout P pieces of a bad path are not joined "),
			lines(podDir+"/app/x.log", ts1+" stdout F by upstream either"),
			lines(`C:\var\log\pods\ns_pod_abc-123\c\1.log`, ts1+" stdout F windows separators"),
			lines("/a/b_c/ns_pod_abc/x/y/0.log", ts1+" stdout F separators in the container"),
			lines("", ts1+" stdout F empty path"),
			lines(nil, ts1+" stdout F no attributes"),
			lines(42, ts1+" stdout F a path that is not a string")}},
		{"malformed lines", [][]*entry.Entry{lines(appLog,
			"plain text, not CRI",
			ts1+" stdin F not a stream",
			ts1+"  stdout F two spaces",
			"2026-12-03T15:04:05.123+01:00 stdout F no Z",
			"Z stdout F empty time",
			"garbageZ stdout F a time that does not parse",
			"2026-13-03T15:04:05Z stdout F month 13",
			"2026-02-30T15:04:05Z stdout F 30 February",
			"0000-12-03T15:04:05Z stdout F year 0",
			"2026-12-03T15:04:05,5Z stdout F comma",
			"2026-12-03T15:04:05.1234567891234Z stdout F 13 digits",
			"2026-12-03T5:04:05Z stdout F one-digit hour",
			"2026-12-03T15:04:05.Z stdout F point without digits",
			"2026^12-03T15:04:05Z stdout F caret",
			ts1+" stdout F text with\na newline",
			ts1+" stdout F\nnewline in the tag",
			ts1+" stdout",
			ts1+"\tstdout F tab",
			"\xff\xfe"+ts1+" stdout F invalid UTF-8 first",
			ts1+" stdout F invalid UTF-8 \xff\xfe in the text")}},
		{"a body that is not a string", [][]*entry.Entry{{
			newEntry(appLog, []byte(ts1+" stdout F bytes"), time.Now()),
			newEntry(appLog, nil, time.Now()),
			newEntry(appLog, map[string]any{"log": "x"}, time.Now())}}},
		{"attributes already there", [][]*entry.Entry{{func() *entry.Entry {
			e := newEntry(appLog, ts1+" stdout F x", time.Now())
			e.Attributes["time"], e.Attributes["log"], e.Attributes["stream"], e.Attributes["log.iostream"] = 1, 2, 3, 4
			e.Resource = map[string]any{"k8s.pod.name": "other", "service.name": "shop"}
			return e
		}()}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compare(t, c.batches, false)
			compare(t, c.batches, true)
		})
	}
}

// The deliberate difference: upstream keys pieces by path alone, so a
// stderr line written between two pieces of a long stdout line becomes
// part of that stdout line; ours keeps the streams apart.
func TestStreamsAreJoinedApart(t *testing.T) {
	batches := [][]*entry.Entry{lines(appLog,
		ts1+" stdout P long stdout line, ",
		ts2+" stderr F an error in between",
		ts2+" stdout F its end")}
	upOut, ourOut := &sink{}, &sink{}
	upFed, _ := run(t, upstreamOp(t, upOut), upOut, batches, false)
	ourFed, _ := run(t, ourOp(t, ourOut, noFlush), ourOut, batches, false)
	bodies := func(es []*entry.Entry) []any {
		var out []any
		for _, e := range es {
			out = append(out, fmt.Sprint(e.Attributes[attrStream], ": ", e.Body))
		}
		return out
	}
	if got, want := fmt.Sprint(bodies(upFed)), "[stdout: long stdout line, an error in between stdout: its end]"; got != want {
		t.Errorf("upstream: %s, want %s (has upstream changed? then this operator's note on keying is out of date)", got, want)
	}
	if got, want := fmt.Sprint(bodies(ourFed)), "[stderr: an error in between stdout: long stdout line, its end]"; got != want {
		t.Errorf("ours: %s, want %s", got, want)
	}
	compare(t, batches, false) // and stream by stream, the same as upstream
}

// TestSameRecordsOnRandomInput compares the two on a corpus of random
// batches (seeded: the same corpus every run).
func TestSameRecordsOnRandomInput(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 200
	if testing.Short() {
		n = 50
	}
	for i := range n {
		b := make([]byte, 64+r.IntN(512))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		batches := decode(b)
		t.Run(fmt.Sprint(i), func(t *testing.T) { compare(t, batches, i%4 == 3) })
	}
}

func FuzzSameRecordsAsUpstream(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 2, 3})
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte{0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe})
	f.Fuzz(func(t *testing.T, b []byte) {
		compare(t, decode(b), len(b)%2 == 1)
	})
}

// The inputs random bytes choose from.
var (
	fuzzPaths = []any{
		appLog, appLog, appLog, appLog,
		podDir + "/app/1.log",
		podDir + "/app/0.log.20261203-150405",
		podDir + "/sidecar/0.log",
		"/var/log/app.log",
		`C:\pods\ns_pod_0a-1\c\0.log`,
		"/x/ns_a_b_0a/c/0.log",
		"/x/n\ns_pod_0a/c/0.log",
		"/x\n/ns_pod_0a/c/0.log",
		"/x/_pod_0a/c/0.log",
		"/x/ns__0a/c/0.log",
		"/x/ns_pod_/c/0.log",
		"/x/ns_pod_0a//0.log",
		"/x/ns_pod_0a/c/.log",
		"/x/ns/_pod_0a/c/0.log",
		"ns_pod_0a/c/0.log",
		"/ns_pod_0a/c/0.log",
		"",
		nil,
		7,
	}
	fuzzTimes = []string{
		ts1, ts1, ts2, "2026-12-03T15:04:05.1Z", "2026-12-03T15:04:05.000000000Z",
		"0000-12-03T15:04:05Z", "2026-12-03T15:04:05,25Z", "2026-02-29T00:00:00Z", "2024-02-29T23:59:59.999999999Z",
		"2026-12-03T24:00:00Z", "2026-12-03T15:60:00Z", "2026-12-03T15:04:60Z", "2026-12-03T1:04:05Z",
		"2026-12-03T15:04:05.1234567890123Z", "2026-12-03 15:04:05Z", "xZ", "Z", "2026-12-03T15:04:05", "+2026-12-03T15:04:05Z",
	}
	fuzzStreams = []string{"stdout", "stderr", "stdout", "stderr", "stdin", "stdoutx", ""}
	fuzzTags    = []string{"F", "P", "F", "P", "", "X", "F:1", "P\n"}
	fuzzTexts   = []string{"hello", "", " ", "two  spaces ", "with\nnewline", "tab\there", "\xff\xfe", "ünïcödé", "Z ^ _ /"}
)

// decode turns bytes into batches of lines: each step takes a few bytes
// to pick a path, time, stream, tag and text, and how the line is put
// together (or broken); some steps end the batch.
func decode(b []byte) [][]*entry.Entry {
	next := func() int {
		if len(b) == 0 {
			return 0
		}
		v := int(b[0])
		b = b[1:]
		return v
	}
	pick := func(n int) int { return next() % n }
	observed := time.Now()
	var batches [][]*entry.Entry
	var cur []*entry.Entry
	for len(b) > 0 {
		path := fuzzPaths[pick(len(fuzzPaths))]
		tm, stream, tag := fuzzTimes[pick(len(fuzzTimes))], fuzzStreams[pick(len(fuzzStreams))], fuzzTags[pick(len(fuzzTags))]
		text := fuzzTexts[pick(len(fuzzTexts))]
		switch k := pick(32); {
		case k < 2: // bytes of the input as the text
			n := pick(32)
			n = min(n, len(b))
			text, b = string(b[:n]), b[n:]
		case k == 2:
			text = strings.Repeat("l", 16<<10)
		case k == 3:
			text = strings.Repeat("m", 1<<20-100+pick(200))
		}
		var line string
		switch pick(12) {
		case 0:
			line = tm + " " + stream + " " + tag
		case 1:
			line = tm + " " + stream
		case 2:
			line = text
		case 3:
			line = tm + "  " + stream + " " + tag + " " + text
		default:
			line = tm + " " + stream + " " + tag + " " + text
		}
		observed = observed.Add(time.Duration(pick(3)) * time.Microsecond)
		cur = append(cur, newEntry(path, line, observed))
		if pick(4) == 0 {
			batches = append(batches, cur)
			cur = nil
		}
	}
	return append(batches, cur)
}
