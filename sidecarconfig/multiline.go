package sidecarconfig

import (
	"maps"
	"slices"
	"sort"
	"time"
)

// Multiline presets: how each runtime starts and continues a record.
//
// A preset says which lines CONTINUE the record before them; every other
// line starts a record. That way an ordinary line is always its own record
// at once (the next line, or the flush period, ends it), and only lines of
// a known continuation shape are ever joined. In every preset, an indented
// line and an empty line continue: stack frames are indented in all six
// runtimes, and Go and Python separate the parts of one report with empty
// lines.
//
// Some runtimes write a report whose first line cannot be told from an
// ordinary line without seeing the line before it: Python's chained
// exceptions ("During handling of the above exception, another exception
// occurred:", then a new "Traceback ..." line) and Node.js's uncaught
// exceptions (a location line "/app/x.js:4" and a source line before the
// error itself). The recombine operator looks at one line at a time, so
// these presets add a second recombine after the first: it joins a record
// to the next when the record ends in a way that announces more (a chain
// separator, a caret line under the source), with is_last_entry, so that
// every other record passes it at once.
//
// Python's exception line ("ValueError: bad") is the LAST line of its
// traceback and is not indented: it continues the traceback because it
// has the shape of an exception (a dotted name ending in Error, Exception,
// Warning, Interrupt, Exit, Iteration or Group, then ":" or the end).
type multilinePreset struct {
	// continues are lines (besides indented and empty ones) that continue
	// the record before them; a regex on the line, anchored at its start.
	continues string
	// starts are lines that start a record even though they would
	// continue one; empty for none.
	starts string
	// joinsNext matches a whole record that continues in the next record;
	// empty for none.
	joinsNext string
}

var multilinePresets = map[string]multilinePreset{
	// \tat frames, \t... N more, \tSuppressed: (indented) and Caused by:
	// at the start of a line.
	"java": {continues: `Caused by: `},
	// Traceback (most recent call last): starts; frames are indented; the
	// exception line ends it; chains continue in the next record; an
	// exception group's "  + Exception Group Traceback" is indented but
	// starts a report.
	"python": {
		continues: `[A-Za-z_][\w.]*(?:Error|Exception|Warning|Interrupt|Exit|Iteration|Group)(?::.*)?$` +
			`|During handling of the above exception, another exception occurred:$` +
			`|The above exception was the direct cause of the following exception:$`,
		starts:    `^\s*\+ Exception Group Traceback \(most recent call last\):`,
		joinsNext: `(?:another exception occurred|the direct cause of the following exception):\s*$`,
	},
	// panic: / fatal error: / SIGQUIT: start; then goroutine headers,
	// function lines (main.main(), main.(*T).M(0xc000...)) with their
	// tab-indented file lines, created by, [signal ...], the register dump
	// of GOTRACEBACK=crash, and empty lines between goroutines.
	"go": {continues: `goroutine \d+.*\]:$|created by |\[signal |PC=0x|runtime stack:$` +
		`|\.\.\.additional frames elided\.\.\.$|[a-z0-9]{2,6}\s+0x[0-9a-f]+$|[^\s(]+\(.*\)$`},
	// "    at" frames (indented); an error's properties and [cause] end
	// with a "}" at the start of a line; an uncaught exception's report
	// starts with its location and source line (a caret under it, at the
	// start of the line when the source line is not indented), and ends
	// with "Node.js vX.Y.Z".
	"nodejs": {
		continues: `\}|\^+\s*$|Node\.js v\d+|\(Use \x60node --trace-`,
		joinsNext: `^\S+:\d+$|(?:^|\n)\s*\^+\s*$`,
	},
	// "\tfrom" frames (indented). Ruby prints an exception's cause as a
	// report of its own, with a first line of the same shape: a cause is
	// therefore a record of its own.
	"ruby": {},
	// "   at" frames, " ---> " inner exceptions and "   --- End of inner
	// exception stack trace ---" (all indented), and the indented message
	// lines of Microsoft.Extensions.Logging's console format.
	"dotnet": {},
}

// MultilinePresets are the preset names of Parsing.Multiline, sorted.
func MultilinePresets() []string {
	names := make([]string, 0, len(multilinePresets))
	for name := range multilinePresets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// How long recombine holds a record for the lines that may continue it.
const (
	// MultilineFlushPeriod is how long the last record of a stream waits
	// for a continuation line before it is sent: above file_log's 200 ms
	// poll, so that a trace cut by a poll still becomes one record.
	MultilineFlushPeriod = time.Second
	// multilineChainFlushPeriod is the second recombine's: longer than
	// the first one's flush plus its check interval (a fifth of it), so
	// that a record announcing more is never sent before the first
	// recombine hands on the rest.
	multilineChainFlushPeriod = 2 * time.Second
	// MultilineMaxBytes bounds one joined record (a larger one is sent in
	// pieces of about this size): the line limit of common backends.
	MultilineMaxBytes = 256 << 10
)

// hold is the longest recombine may keep a record it has read: its flush
// period, plus a fifth (how often it checks), plus a margin; 0 without
// multiline parsing. The drain waits that long at the end, once every file
// is read, so that a pod's last record is sent.
func (l LogParsing) hold() time.Duration {
	var longest time.Duration
	for _, p := range append([]Parsing{l.Default}, slices.Collect(maps.Values(l.Containers))...) {
		switch {
		case p.Multiline == "":
		case multilinePresets[p.Multiline].joinsNext != "":
			longest = max(longest, multilineChainFlushPeriod)
		default:
			longest = max(longest, MultilineFlushPeriod)
		}
	}
	if longest == 0 {
		return 0
	}
	return longest + longest/5 + 100*time.Millisecond
}
