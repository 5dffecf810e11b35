package logrotate

import (
	"fmt"
	"strconv"
	"strings"
)

// Size units accepted by ParseSize, binary as in Kubernetes quantities.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

var sizeSuffixes = []struct {
	suffix string
	factor int64
}{
	{"Ki", KiB},
	{"Mi", MiB},
	{"Gi", GiB},
}

// ParseSize reads a size such as "10Mi", "512Ki", "1Gi" or "1048576" (bytes);
// "10MiB" is read as "10Mi".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	factor := int64(1)
	for _, u := range sizeSuffixes {
		if v, ok := strings.CutSuffix(t, u.suffix+"B"); ok {
			t, factor = v, u.factor
			break
		}
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, factor = v, u.factor
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: write a whole number of bytes, or one with a suffix Ki, Mi or Gi (for example 10Mi; 10MiB works too)", s)
	}
	if n > 0 && factor > 1 && n > (1<<62)/factor {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * factor, nil
}

// FormatSize prints a size the way ParseSize reads it, with the largest exact unit.
func FormatSize(n int64) string {
	for i := len(sizeSuffixes) - 1; i >= 0; i-- {
		u := sizeSuffixes[i]
		if n != 0 && n%u.factor == 0 {
			return strconv.FormatInt(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
