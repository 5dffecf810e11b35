package annotations

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		value string
		want  RateLimit
		err   string // substring; "" for none
	}{
		{value: "1000/s", want: RateLimit{Lines: 1000}},
		{value: "1000", want: RateLimit{Lines: 1000}},
		{value: "1000/s:5000", want: RateLimit{Lines: 1000, LinesBurst: 5000}},
		{value: "1Mi/s", want: RateLimit{Bytes: 1 << 20}},
		{value: "1MiB/s:4MiB", want: RateLimit{Bytes: 1 << 20, BytesBurst: 4 << 20}},
		{value: "4096B/s:8192", want: RateLimit{Bytes: 4096, BytesBurst: 8192}},
		{value: "  1000/s:5000   512Ki/s:2Mi ", want: RateLimit{Lines: 1000, LinesBurst: 5000, Bytes: 512 << 10, BytesBurst: 2 << 20}},
		{value: "256Ki/s 100/s", want: RateLimit{Lines: 100, Bytes: 256 << 10}},

		{value: "", err: "empty; write lines per second as 1000/s"},
		{value: "0/s", err: `rate "0/s": not a whole number of lines above 0`},
		{value: "-5/s", err: "not a whole number of lines above 0"},
		{value: "1.5/s", err: "not a whole number of lines above 0"},
		{value: "lots", err: `rate "lots"`},
		{value: "1000/s:0", err: `burst "1000/s:0"`},
		{value: "1000/s:1Mi", err: `burst "1000/s:1Mi"`},
		{value: "1MB/s", err: "not a size above 0 such as 512Ki"},
		{value: "0Mi/s", err: "not a size above 0"},
		{value: "100/s 200/s", err: "has two line rates"},
		{value: "1Mi/s 2Mi/s", err: "has two byte rates"},
		{value: "1/s 2/s 3/s", err: "has more than two rates"},
	}
	for _, tt := range tests {
		got, err := ParseRateLimit(tt.value)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.value, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one with %q", tt.value, err, tt.err)
		case got != tt.want:
			t.Errorf("%q: %+v, want %+v", tt.value, got, tt.want)
		}
	}
}

func TestRateLimitStringReadsBack(t *testing.T) {
	for _, r := range []RateLimit{
		{Lines: 1000}, {Lines: 1000, LinesBurst: 5000}, {Bytes: 1 << 20}, {Bytes: 1000, BytesBurst: 3 << 10},
		{Lines: 7, Bytes: 5 << 30, BytesBurst: 6 << 30},
	} {
		s := r.String()
		back, err := ParseRateLimit(s)
		if err != nil || back != r {
			t.Errorf("%+v is written %q, which reads back as %+v (%v)", r, s, back, err)
		}
	}
	if s := (RateLimit{}).String(); s != None {
		t.Errorf("no limit is written %q, want %q", s, None)
	}
}

func TestParseLogRateLimit(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  map[string]RateLimit
		warns []string // substrings, one per expected warning, in order
	}{
		{name: "every container", value: "1000/s:5000 1Mi/s", want: map[string]RateLimit{"*": {Lines: 1000, LinesBurst: 5000, Bytes: 1 << 20}}},
		{name: "per container", value: "web=1000/s, worker=256Ki/s", want: map[string]RateLimit{"web": {Lines: 1000}, "worker": {Bytes: 256 << 10}}},
		{name: "others and exceptions", value: "*=1000/s,envoy=none", want: map[string]RateLimit{"*": {Lines: 1000}, "envoy": {}}},
		{name: "JSON", value: `{"web":"1000/s 1Mi/s:2Mi"}`, want: map[string]RateLimit{"web": {Lines: 1000, Bytes: 1 << 20, BytesBurst: 2 << 20}}},

		{name: "bad value", value: "fast",
			warns: []string{`annotation fargate-otel.io/log-rate-limit: the value for every container ignored (no limit applies): rate "fast": not a whole number of lines above 0`}},
		{name: "one bad entry, the others kept", value: "web=1000/s,worker=0/s", want: map[string]RateLimit{"web": {Lines: 1000}},
			warns: []string{`the value for container worker ignored (the value for *, else no limit applies)`}},
		{name: "not NAME=VALUE", value: "web=10/s,20/s", want: map[string]RateLimit{"web": {Lines: 10}},
			warns: []string{`"20/s" ignored: not NAME=VALUE; write one value for every container (e.g. 1000/s), or values by container: web=...,worker=... (* for the others, none for no limit)`}},
		{name: "empty", value: " ", warns: []string{"annotation fargate-otel.io/log-rate-limit: empty; write one value for every container (e.g. 1000/s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, warns := Parse(map[string]string{LogRateLimit: tt.value})
			if !reflect.DeepEqual(o.LogRateLimit, tt.want) {
				t.Errorf("rate limits %+v, want %+v", o.LogRateLimit, tt.want)
			}
			checkWarnings(t, warns, tt.warns)
		})
	}
}

// FuzzParseRateLimit: whatever the value, a limit that is accepted has a
// positive rate and is written back as the same limit.
func FuzzParseRateLimit(f *testing.F) {
	for _, seed := range []string{"1000/s", "1000/s:5000 1Mi/s:4Mi", "4096B/s", "1MB/s", "0/s", "1/s 2/s 3/s", ":", "9223372036854775807Gi/s"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := ParseRateLimit(v)
		if err != nil {
			return
		}
		if !r.Enabled() || r.Lines < 0 || r.Bytes < 0 || r.LinesBurst < 0 || r.BytesBurst < 0 {
			t.Fatalf("%q: accepted %+v", v, r)
		}
		back, err := ParseRateLimit(r.String())
		if err != nil || back != r {
			t.Fatalf("%q: %+v is written %q, which reads back as %+v (%v)", v, r, r.String(), back, err)
		}
	})
}
