package crioperator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/entry"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator"
)

// discard is an output that takes batches and drops them.
type discard struct{ sink }

func (*discard) ProcessBatch(context.Context, []*entry.Entry) error { return nil }
func (*discard) Process(context.Context, *entry.Entry) error        { return nil }

// BenchmarkOperators prints ns per line of upstream's container operator
// and of ours on the same batches of 100 lines (as file_log's reader hands
// them on): whole 100-byte lines, and 16 KiB pieces joined in fours.
//
//	go test -run '^$' -bench . ./internal/crioperator
func BenchmarkOperators(b *testing.B) {
	now := time.Now()
	whole := make([]string, 100)
	for i := range whole {
		whole[i] = fmt.Sprintf("%s %s F seq=%08d %s", ts1, []string{"stdout", "stderr"}[i%2], i, strings.Repeat("x", 56))
	}
	var pieces []string
	for range 25 {
		for j := range 4 {
			tag := "P"
			if j == 3 {
				tag = "F"
			}
			pieces = append(pieces, ts1+" stdout "+tag+" "+strings.Repeat("p", 16<<10))
		}
	}
	for _, in := range []struct {
		name  string
		lines []string
	}{{"100-byte lines", whole}, {"16KiB pieces", pieces}} {
		for _, impl := range []string{"upstream", "container_cri"} {
			b.Run(in.name+"/"+impl, func(b *testing.B) {
				out := &discard{}
				var op operator.Operator
				if impl == "upstream" {
					op = upstreamOp(b, &out.sink)
					_ = op.SetOutputs([]operator.Operator{out})
				} else {
					op = ourOp(b, &out.sink, noFlush)
					_ = op.SetOutputs([]operator.Operator{out})
				}
				defer func() { _ = op.Stop() }()
				batch := make([]*entry.Entry, len(in.lines))
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					for i, l := range in.lines {
						batch[i] = newEntry(appLog, l, now)
					}
					b.StartTimer()
					_ = op.ProcessBatch(ctx, batch)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in.lines)), "ns/line")
			})
		}
	}
}
