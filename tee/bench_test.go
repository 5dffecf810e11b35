package tee

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// BenchmarkFraming measures framing 100-byte lines into CRI records (the
// reader's work per chunk), with a writer that discards: without a rate
// limit, and with one that is never reached (the cost of the limit itself;
// bench/tee/run.sh prints the ratio).
func BenchmarkFraming(b *testing.B) {
	for _, format := range []Format{CRI, Raw} {
		for _, limit := range []bool{false, true} {
			name := format.String()
			if limit {
				name += "-limit-not-hit"
			}
			b.Run(name, func(b *testing.B) {
				line := strings.Repeat("x", 99) + "\n"
				chunk := []byte(strings.Repeat(line, readSize/100))
				s := newSink(format, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, 0)
				ls := newLineSplitter(Stdout, format)
				clk := newClock(nil)
				var rec recorder = s
				if limit {
					rec = newLimited(s, clk, RateLimit{Lines: 1e12, Bytes: 1e15})
				}
				b.SetBytes(int64(len(chunk)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ls.feed(clk.stamp(), chunk, rec)
					s.flush()
				}
				b.StopTimer()
				s.close(time.Minute)
			})
		}
	}
}
