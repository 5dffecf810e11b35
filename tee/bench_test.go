package tee

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// BenchmarkFraming measures framing 100-byte lines into CRI records (the
// reader's work per chunk), with a writer that discards.
func BenchmarkFraming(b *testing.B) {
	for _, format := range []Format{CRI, Raw} {
		b.Run(format.String(), func(b *testing.B) {
			line := strings.Repeat("x", 99) + "\n"
			chunk := []byte(strings.Repeat(line, readSize/100))
			s := newSink(format, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, 0)
			ls := newLineSplitter(Stdout, format)
			clk := newClock(nil)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ls.feed(clk.stamp(), chunk, s)
				s.flush()
			}
			b.StopTimer()
			s.close(time.Minute)
		})
	}
}
