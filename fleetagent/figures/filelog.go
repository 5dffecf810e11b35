package figures

import (
	"context"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"
)

// What file_log's container parser puts on each record (from the path the
// wrapper writes and the CRI line).
const (
	containerAttr = "k8s.container.name"
	streamAttr    = "log.iostream"
)

// The wrapper's own report of lines it had to drop, a stderr line in the
// container's log file (tee/sink.go): "fargate-otel-tee: <n> log lines were
// lost since <time>: <reasons>".
const (
	wrapperPrefix = "fargate-otel-tee: "
	droppedInfix  = " log lines were lost since "
)

type aliased interface{ DeprecatedAlias() component.Type }

// WrapFileLog returns factory (file_log) with every receiver's output
// counted into f: lines read per <container>/<stream>, and the wrapper's
// dropped-lines reports summed per container. The type, alias, config and
// stability are factory's own.
func WrapFileLog(factory receiver.Factory, f *Figures) receiver.Factory {
	opts := []xreceiver.FactoryOption{
		xreceiver.WithLogs(func(ctx context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			return factory.CreateLogs(ctx, set, cfg, &countingLogs{next: next, f: f})
		}, factory.LogsStability()),
	}
	if a, ok := factory.(aliased); ok && a.DeprecatedAlias().String() != "" {
		opts = append(opts, xreceiver.WithDeprecatedTypeAlias(a.DeprecatedAlias()))
	}
	return xreceiver.NewFactory(factory.Type(), factory.CreateDefaultConfig, opts...)
}

// countingLogs counts a batch before passing it on, and adds the counts
// once the next consumer took the batch: a batch that is refused is retried
// by file_log, and counted then.
type countingLogs struct {
	next consumer.Logs
	f    *Figures
}

func (c *countingLogs) Capabilities() consumer.Capabilities { return c.next.Capabilities() }

func (c *countingLogs) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	// Counted before the call: once passed on, the batch belongs to the
	// pipeline (an exporter's queue may already be encoding it).
	read, dropped := count(ld)
	err := c.next.ConsumeLogs(ctx, ld)
	if err == nil {
		c.f.lines(read, dropped)
	}
	return err
}

// count tallies one batch.
func count(ld plog.Logs) (read, dropped map[string]int64) {
	read = map[string]int64{}
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		container := "unknown"
		if v, ok := rl.Resource().Attributes().Get(containerAttr); ok && v.Str() != "" {
			container = v.Str()
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			recs := sls.At(j).LogRecords()
			for k := 0; k < recs.Len(); k++ {
				rec := recs.At(k)
				stream := "unknown"
				if v, ok := rec.Attributes().Get(streamAttr); ok && v.Str() != "" {
					stream = v.Str()
				}
				read[container+"/"+stream]++
				if stream == "stderr" {
					if n, ok := droppedLines(rec.Body().Str()); ok {
						if dropped == nil {
							dropped = map[string]int64{}
						}
						dropped[container] += n
					}
				}
			}
		}
	}
	return read, dropped
}

// droppedLines reads the count of a wrapper's dropped-lines report.
func droppedLines(body string) (int64, bool) {
	rest, ok := strings.CutPrefix(body, wrapperPrefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, droppedInfix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
