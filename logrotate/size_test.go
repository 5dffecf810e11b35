package logrotate

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "0", want: 0},
		{in: "1048576", want: MiB},
		{in: "512Ki", want: 512 * KiB},
		{in: "10Mi", want: 10 * MiB},
		{in: " 2Gi ", want: 2 * GiB},
		{in: "1MiB", want: MiB},
		{in: "64KiB", want: 64 * KiB},
		{in: "10MB", err: "suffix Ki, Mi or Gi"},
		{in: "10M", err: "suffix Ki, Mi or Gi"},
		{in: "10mi", err: "suffix Ki, Mi or Gi"},
		{in: "1.5Mi", err: "whole number"},
		{in: "-1", err: "whole number"},
		{in: "", err: "whole number"},
		{in: "9999999999999Gi", err: "too large"},
	} {
		got, err := ParseSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatSizeRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, KiB, 1536, 10 * MiB, 3 * GiB, GiB + 1} {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q, parsed back as %d, %v", n, s, back, err)
		}
	}
	if got := FormatSize(10 * MiB); got != "10Mi" {
		t.Errorf("FormatSize(10Mi) = %q", got)
	}
}
