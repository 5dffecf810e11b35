package crioperator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/entry"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator/helper"
)

// The attribute names upstream uses.
const (
	attrPath     = "log.file.path"
	attrStream   = "log.iostream"
	attrLogtag   = "logtag"
	resNamespace = "k8s.namespace.name"
	resPod       = "k8s.pod.name"
	resUID       = "k8s.pod.uid"
	resContainer = "k8s.container.name"
	resRestart   = "k8s.container.restart_count"
)

// Values boxed once: storing a string in an `any` allocates otherwise.
var (
	anyStdout any = "stdout"
	anyStderr any = "stderr"
	anyF      any = "F"
	anyP      any = "P"
)

var errNotCRI = errors.New("the line is not in the CRI format of containerd (<time ending in Z> <stdout|stderr> <tag> <text>)")

// source is what pieces are joined by.
type source struct{ path, stream string }

// partial is a line whose F has not come yet.
type partial struct {
	base  *entry.Entry    // the first piece: its time and attributes are the line's
	text  strings.Builder // the texts so far; String() does not copy them
	first time.Time       // the first piece's observed time, for the force flush
}

// Operator is the container_cri operator.
type Operator struct {
	helper.TransformerOperator
	addMeta     bool
	maxLogSize  int
	flushPeriod time.Duration
	maxSources  int
	stopWait    time.Duration

	// mu guards paths and pending; it is never held while writing.
	mu      sync.Mutex
	paths   *pathCache
	pending map[source]*partial

	// writing is held from taking records out of the state until they are
	// written, so that records leave in the order they were made, whether
	// a batch, the force flush or Stop made them.
	writing  chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Start starts the force flush.
func (o *Operator) Start(operator.Persister) error {
	go o.flushLoop()
	return nil
}

// Stop sends the pieces still waiting for their F, waiting at most
// stopWait for the outputs to take them (a blocked output does not hold
// the collector's shutdown; what it did not take is counted in the log).
func (o *Operator) Stop() error {
	o.stopOnce.Do(func() {
		close(o.done)
		ctx, cancel := context.WithTimeout(context.Background(), o.stopWait)
		defer cancel()
		sent := make(chan int, 1)
		go func() {
			select {
			case o.writing <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-o.writing }()
			o.mu.Lock()
			out := o.takeAll(nil)
			o.mu.Unlock()
			if len(out) > 0 {
				if err := o.WriteBatch(ctx, out); err != nil {
					o.Logger().Error("could not send the partial lines at stop", zap.Error(err))
				}
			}
			sent <- len(out)
		}()
		select {
		case <-sent:
		case <-ctx.Done():
			o.mu.Lock()
			left := len(o.pending)
			o.mu.Unlock()
			o.Logger().Warn("stopping without waiting any longer for the output to take the partial lines (P without F) still pending",
				zap.Duration("waited", o.stopWait), zap.Int("partial_lines_not_taken", left))
		}
	})
	return nil
}

// flushLoop sends, every fifth of the period, the partials that have
// waited a whole period (as upstream's recombine does).
func (o *Operator) flushLoop() {
	tick := time.NewTicker(max(o.flushPeriod/5, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-o.done:
			return
		case <-tick.C:
		}
		o.mu.Lock()
		n := len(o.pending)
		o.mu.Unlock()
		if n == 0 {
			continue
		}
		select {
		case o.writing <- struct{}{}:
		case <-o.done:
			return
		}
		o.mu.Lock()
		out := o.takeExpired(time.Now())
		o.mu.Unlock()
		if len(out) > 0 {
			if err := o.WriteBatch(context.Background(), out); err != nil {
				o.Logger().Error("could not send partial lines after force_flush_period", zap.Error(err))
			}
		}
		<-o.writing
	}
}

// Process handles one entry as a batch of one.
func (o *Operator) Process(ctx context.Context, e *entry.Entry) error {
	return o.ProcessBatch(ctx, []*entry.Entry{e})
}

// ProcessBatch turns CRI lines into records. As upstream's container
// operator, it writes the records of the batch first, then, as a second
// batch, the entries it could not parse (per on_error) or skipped (if).
func (o *Operator) ProcessBatch(ctx context.Context, entries []*entry.Entry) error {
	var errs []error
	var failed []*entry.Entry
	keep := func(_ context.Context, e *entry.Entry) error {
		failed = append(failed, e)
		return nil
	}
	out := make([]*entry.Entry, 0, len(entries))

	o.writing <- struct{}{}
	defer func() { <-o.writing }()
	o.mu.Lock()
	for _, e := range entries {
		if o.IfExpr != nil {
			skip, err := o.Skip(ctx, e)
			if err != nil {
				errs = append(errs, o.HandleEntryErrorWithWrite(ctx, e, err, keep))
				continue
			}
			if skip {
				failed = append(failed, e)
				continue
			}
		}
		src, last, err := o.parse(e)
		if err != nil {
			errs = append(errs, o.HandleEntryErrorWithWrite(ctx, e, err, keep))
			continue
		}
		out = o.join(e, src, last, out)
	}
	o.mu.Unlock()

	if len(out) > 0 {
		errs = append(errs, o.WriteBatch(ctx, out))
	}
	if len(failed) > 0 {
		errs = append(errs, o.WriteBatch(ctx, failed))
	}
	return errors.Join(errs...)
}

// parse makes e a record, or returns why not with e as upstream leaves it
// at that step: the line unchanged when it is not CRI; its fields as
// attributes (time, stream, logtag, log) when the time is not valid; the
// record without k8s.* resource attributes when the path says nothing.
// last tells whether the line is whole (tag F): any other tag is a piece,
// as upstream's `logtag == 'F'` decides.
func (o *Operator) parse(e *entry.Entry) (src source, last bool, err error) {
	raw, ok := e.Body.(string)
	if !ok {
		return src, false, fmt.Errorf("type '%T' cannot be parsed as containerd logs", e.Body)
	}
	line, ok := parseCRI(raw)
	if !ok {
		return src, false, errNotCRI
	}
	if e.Attributes == nil {
		e.Attributes = make(map[string]any, 4)
	}
	attrs := e.Attributes
	ts, err := parseTime(line.time)
	if err != nil {
		attrs["time"], attrs["stream"], attrs["logtag"], attrs["log"] = line.time, line.stream, line.logtag, line.log
		return src, false, fmt.Errorf("failed to parse time: %w", err)
	}
	e.Timestamp = ts
	e.Body = line.log
	delete(attrs, "time")
	delete(attrs, "log")
	delete(attrs, "stream")
	attrs[attrStream] = boxStream(line.stream)
	attrs[attrLogtag] = boxTag(line.logtag)
	last = line.logtag == "F"
	src.stream = line.stream
	v, hasPath := attrs[attrPath]
	path, isString := v.(string)
	if !o.addMeta {
		// Upstream's recombine reads the path as a string, else pools the
		// entry with every other one without a path.
		if b, isBytes := v.([]byte); isBytes {
			path, isString = string(b), true
		}
		if hasPath && isString {
			src.path = path
		}
		return src, last, nil
	}
	if !hasPath {
		return source{}, false, fmt.Errorf("operator '%s' has 'add_metadata_from_filepath' enabled, but the log record attribute '%s' is missing: set include_file_path: true on file_log", o.ID(), attrPath)
	}
	if !isString {
		return source{}, false, fmt.Errorf("type '%T' cannot be parsed as log path field", v)
	}
	meta := o.paths.lookup(path)
	if !meta.ok {
		return source{}, false, fmt.Errorf("failed to detect a valid log path: %q is not <dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log", path)
	}
	if e.Resource == nil {
		e.Resource = make(map[string]any, 5)
	}
	e.Resource[resNamespace] = meta.boxed[0]
	e.Resource[resPod] = meta.boxed[1]
	e.Resource[resUID] = meta.boxed[2]
	e.Resource[resContainer] = meta.boxed[3]
	e.Resource[resRestart] = meta.boxed[4]
	src.path = path
	return src, last, nil
}

func boxStream(s string) any {
	if s == "stdout" {
		return anyStdout
	}
	return anyStderr
}

func boxTag(t string) any {
	switch t {
	case "F":
		return anyF
	case "P":
		return anyP
	}
	return t
}

// join appends to out what e completes: e itself when it is a whole line
// (F) with nothing pending, the joined line when it is the F of pieces or
// makes them longer than max_log_size.
func (o *Operator) join(e *entry.Entry, src source, last bool, out []*entry.Entry) []*entry.Entry {
	text := e.Body.(string)
	p := o.pending[src]
	if p == nil {
		if len(o.pending) >= o.maxSources {
			o.Logger().Error("too many files and streams with a partial line pending: sending them all; raise max_sources", zap.Int("max_sources", o.maxSources))
			out = o.takeAll(out)
		}
		if last || (o.maxLogSize > 0 && len(text) > o.maxLogSize) {
			return append(out, e)
		}
		p = &partial{base: e, first: e.ObservedTimestamp}
		p.text.Grow(2 * len(text))
		p.text.WriteString(text)
		o.pending[src] = p
		return out
	}
	p.text.WriteString(text)
	if last || (o.maxLogSize > 0 && p.text.Len() > o.maxLogSize) {
		out = append(out, o.finish(src, p))
	}
	return out
}

// finish makes the joined record of p and forgets p.
func (o *Operator) finish(src source, p *partial) *entry.Entry {
	p.base.Body = p.text.String()
	delete(o.pending, src)
	return p.base
}

// takeAll appends every pending line to out, oldest first.
func (o *Operator) takeAll(out []*entry.Entry) []*entry.Entry {
	return o.take(out, func(*partial) bool { return true })
}

// takeExpired appends the lines pending for a whole period.
func (o *Operator) takeExpired(now time.Time) []*entry.Entry {
	return o.take(nil, func(p *partial) bool { return now.Sub(p.first) >= o.flushPeriod })
}

func (o *Operator) take(out []*entry.Entry, pick func(*partial) bool) []*entry.Entry {
	type item struct {
		src source
		p   *partial
	}
	var items []item
	for src, p := range o.pending {
		if pick(p) {
			items = append(items, item{src, p})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return a.p.first.Compare(b.p.first) })
	for _, it := range items {
		out = append(out, o.finish(it.src, it.p))
	}
	return out
}
