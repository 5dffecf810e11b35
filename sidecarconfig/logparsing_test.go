package sidecarconfig

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// group joins lines into records the way the rendered operators decide
// (the preset's regexes, which recombine evaluates with Go's regexp): a
// first recombine on is_first_entry, then, for presets with joinsNext, a
// second one that joins a record to the next when it matches. The real
// operators are tested with real runtimes in injector/collectorconfig;
// this is the quick table of shapes.
func group(preset multilinePreset, lines []string) []string {
	cont := regexp.MustCompile(`^(?:\s|$|` + preset.continues + `)`)
	if preset.continues == "" {
		cont = regexp.MustCompile(`^(?:\s|$)`)
	}
	var starts, joins *regexp.Regexp
	if preset.starts != "" {
		starts = regexp.MustCompile(preset.starts)
	}
	if preset.joinsNext != "" {
		joins = regexp.MustCompile(preset.joinsNext)
	}
	var records []string
	for _, l := range lines {
		first := (starts != nil && starts.MatchString(l)) || !cont.MatchString(l)
		if first || len(records) == 0 {
			records = append(records, l)
			continue
		}
		records[len(records)-1] += "\n" + l
	}
	if joins == nil {
		return records
	}
	var out []string
	held := ""
	for _, r := range records {
		if held != "" {
			r = held + "\n" + r
			held = ""
		}
		if joins.MatchString(r) {
			held = r
			continue
		}
		out = append(out, r)
	}
	if held != "" {
		out = append(out, held)
	}
	return out
}

func TestMultilinePresetShapes(t *testing.T) {
	tests := []struct {
		preset string
		text   string
		want   []string // records, lines joined by \n; "|" separates nothing
	}{
		{"java", "start\nException in thread \"main\" java.lang.IllegalStateException: outer\n\tat App.main(App.java:7)\n\tSuppressed: java.io.IOException: sup\n\t\t... 1 more\nCaused by: java.lang.IllegalArgumentException: inner\n\tat App.inner(App.java:2)\n\t... 8 more\nnext",
			[]string{"start", "Exception in thread \"main\" java.lang.IllegalStateException: outer\n\tat App.main(App.java:7)\n\tSuppressed: java.io.IOException: sup\n\t\t... 1 more\nCaused by: java.lang.IllegalArgumentException: inner\n\tat App.inner(App.java:2)\n\t... 8 more", "next"}},
		{"python", "before\nTraceback (most recent call last):\n  File \"x.py\", line 5, in <module>\n    f()\n           ^^^\nValueError: bad\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"x.py\", line 7, in <module>\n__main__.OrderError: order failed\nafter\n  + Exception Group Traceback (most recent call last):\n  | ExceptionGroup: eg (1 sub-exception)\n  +-+---------------- 1 ----------------\n    | KeyboardInterrupt\n    +------------------------------------\nlast",
			[]string{"before", "Traceback (most recent call last):\n  File \"x.py\", line 5, in <module>\n    f()\n           ^^^\nValueError: bad\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"x.py\", line 7, in <module>\n__main__.OrderError: order failed", "after", "  + Exception Group Traceback (most recent call last):\n  | ExceptionGroup: eg (1 sub-exception)\n  +-+---------------- 1 ----------------\n    | KeyboardInterrupt\n    +------------------------------------", "last"}},
		{"python", "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nKeyError: 'k'\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"x.py\", line 3, in <module>\nSystemExit: 2\nINFO:root:next",
			[]string{"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nKeyError: 'k'\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"x.py\", line 3, in <module>\nSystemExit: 2", "INFO:root:next"}},
		{"go", "listening\npanic: boom [recovered]\n\tpanic: again\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4c8883]\n\ngoroutine 1 gp=0xc000002380 m=0 mp=0x5a3f40 [running]:\nmain.(*T).M(0xc000012345, {0x1, 0x2})\n\t/app/main.go:12 +0x25\nmain.main()\n\t/app/main.go:5 +0x1d\n\ngoroutine 19 [sleep]:\ntime.Sleep(0x34630b8a000)\n\t/usr/local/go/src/runtime/time.go:363 +0x165\ncreated by main.main in goroutine 1\n\t/app/main.go:4 +0x87\n...additional frames elided...\nrax    0x0\nrip    0x46e1a1\nstarted again",
			[]string{"listening", "panic: boom [recovered]\n\tpanic: again\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4c8883]\n\ngoroutine 1 gp=0xc000002380 m=0 mp=0x5a3f40 [running]:\nmain.(*T).M(0xc000012345, {0x1, 0x2})\n\t/app/main.go:12 +0x25\nmain.main()\n\t/app/main.go:5 +0x1d\n\ngoroutine 19 [sleep]:\ntime.Sleep(0x34630b8a000)\n\t/usr/local/go/src/runtime/time.go:363 +0x165\ncreated by main.main in goroutine 1\n\t/app/main.go:4 +0x87\n...additional frames elided...\nrax    0x0\nrip    0x46e1a1", "started again"}},
		{"go", "fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:9 +0x2e\nnext",
			[]string{"fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:9 +0x2e", "next"}},
		{"nodejs", "caught\nError: outer\n    at f (/app/x.js:1:11) {\n  code: 'E_X',\n  [cause]: Error: inner\n      at g (/app/x.js:2:1)\n}\n/app/x.js:4\nthrow new TypeError(\"boom\");\n^\n\nTypeError: boom\n    at Object.<anonymous> (/app/x.js:4:7)\n\nNode.js v20.20.2\n",
			[]string{"caught", "Error: outer\n    at f (/app/x.js:1:11) {\n  code: 'E_X',\n  [cause]: Error: inner\n      at g (/app/x.js:2:1)\n}", "/app/x.js:4\nthrow new TypeError(\"boom\");\n^\n\nTypeError: boom\n    at Object.<anonymous> (/app/x.js:4:7)\n\nNode.js v20.20.2\n"}},
		{"nodejs", "node:internal/process/promises:288\n            triggerUncaughtException(err, true /* fromPromise */);\n            ^\n\n[UnhandledPromiseRejection: This error originated either by throwing inside of an async function]\n\nNode.js v18.19.0\n(node:12) Warning: something\n(Use `node --trace-warnings ...` to show where the warning was created)",
			[]string{"node:internal/process/promises:288\n            triggerUncaughtException(err, true /* fromPromise */);\n            ^\n\n[UnhandledPromiseRejection: This error originated either by throwing inside of an async function]\n\nNode.js v18.19.0", "(node:12) Warning: something\n(Use `node --trace-warnings ...` to show where the warning was created)"}},
		{"ruby", "app.rb:2:in `foo': boom (RuntimeError)\n\tfrom app.rb:5:in `<main>'\nnext",
			[]string{"app.rb:2:in `foo': boom (RuntimeError)\n\tfrom app.rb:5:in `<main>'", "next"}},
		{"dotnet", "Unhandled exception. System.InvalidOperationException: outer\n ---> System.ArgumentException: inner\n   at P.Inner() in /src/P.cs:line 10\n   --- End of inner exception stack trace ---\n   at P.Main() in /src/P.cs:line 5\ninfo: Microsoft.Hosting.Lifetime[0]\n      Application started.",
			[]string{"Unhandled exception. System.InvalidOperationException: outer\n ---> System.ArgumentException: inner\n   at P.Inner() in /src/P.cs:line 10\n   --- End of inner exception stack trace ---\n   at P.Main() in /src/P.cs:line 5", "info: Microsoft.Hosting.Lifetime[0]\n      Application started."}},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			got := group(multilinePresets[tt.preset], strings.Split(tt.text, "\n"))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestLogParsingValidation(t *testing.T) {
	c := Default()
	c.LogParsing = LogParsing{
		Default: Parsing{Multiline: "cobol", Parser: "xml"},
		Containers: map[string]Parsing{
			"Web":    {Parser: "json"},
			"api":    {Multiline: "regex:", Parser: "regex:^(no names)$"},
			"worker": {Multiline: "regex:(", Parser: "regex:["},
		},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("bad log parsing passed validation")
	}
	for _, want := range []string{
		`log parsing of every container: multiline: "cobol" is not a multiline preset: use one of dotnet, go, java, nodejs, python, ruby, or regex:<regex of a record's first line>`,
		`log parsing of every container: parser: "xml" is not a log parser: use json, logfmt, or regex:<regex with named groups>`,
		`log parsing: "Web" is not a container name`,
		`log parsing of container api: multiline: "regex:" needs the regex of a record's first line after it`,
		`log parsing of container api: parser: the parser regex "^(no names)$" has no named group`,
		`log parsing of container worker: multiline: the first-line regex "(" does not compile`,
		`log parsing of container worker: parser: the parser regex "[" does not compile`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}

func TestLogParsingHoldsTheDrain(t *testing.T) {
	for _, tt := range []struct {
		lp   LogParsing
		want time.Duration
	}{
		{LogParsing{}, 0},
		{LogParsing{Default: Parsing{Parser: "json"}}, 0},
		{LogParsing{Containers: map[string]Parsing{"a": {Multiline: "java"}}}, 1300 * time.Millisecond},
		{LogParsing{Default: Parsing{Multiline: "regex:^x"}, Containers: map[string]Parsing{"a": {Multiline: "python"}}}, 2500 * time.Millisecond},
	} {
		if got := tt.lp.hold(); got != tt.want {
			t.Errorf("%+v: hold %s, want %s", tt.lp, got, tt.want)
		}
	}
	// Logs off: no hold, whatever the parsing.
	c := Default()
	c.Signals = []Signal{Traces}
	c.LogParsing.Default.Multiline = "java"
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hold:") {
		t.Errorf("a config without logs holds the drain:\n%s", out)
	}
}

func TestOverridesReplaceLogParsing(t *testing.T) {
	c := Default()
	c.LogParsing.Default = Parsing{Multiline: "java"}
	o, err := ParseOverrides([]byte(`{"logParsing":{"containers":{"web":{"parser":"json"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.IsZero() {
		t.Fatal("overrides with log parsing are zero")
	}
	got, err := o.Apply(c)
	if err != nil {
		t.Fatal(err)
	}
	want := LogParsing{Containers: map[string]Parsing{"web": {Parser: "json"}}}
	if !reflect.DeepEqual(got.LogParsing, want) {
		t.Fatalf("log parsing %+v, want %+v (replaced whole)", got.LogParsing, want)
	}
	// Apply copies: changing the result leaves the overrides alone.
	got.LogParsing.Containers["web"] = Parsing{}
	if o.LogParsing.Containers["web"].Parser != "json" {
		t.Fatal("Apply shares the overrides' map")
	}
	if _, err := (Overrides{LogParsing: &LogParsing{Default: Parsing{Parser: "yaml"}}}).Apply(c); err == nil ||
		!strings.Contains(err.Error(), `"yaml" is not a log parser`) {
		t.Fatalf("bad live parsing: %v", err)
	}
	if _, err := ParseOverrides([]byte(`{"logParsing":{"default":{"multilne":"java"}}}`)); err == nil {
		t.Fatal("a misspelt member passed")
	}
}
