package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fargate-otel/fargate-otel/logrotate"
	"github.com/fargate-otel/fargate-otel/tee"
)

// Config is one follower: the containers of one pod.
type Config struct {
	NodeProxy  *url.URL // https://<node proxy>
	TokenFile  string
	CAFile     string
	Node       string
	Pod        tee.Identity // Namespace, Pod and PodUID; Container is ignored
	Containers []string
	Dir        string // root of the logs volume: <Dir>/<ns>_<pod>_<uid>/<container>/<restart>.log
	Rotate     logrotate.Options

	// DrainTimeout bounds the time from the stop signal to the end: the
	// streams of the containers, which have exited by then, are read to
	// their end meanwhile.
	DrainTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts; a refusal
	// (401, 403, 429) waits RetryMax.
	RetryMin, RetryMax time.Duration
	// PollInterval is how often the pod's status is read while a stream
	// is quiet, to notice a restart that a hung stream would hide.
	PollInterval time.Duration
	Logger       *slog.Logger
}

func (c *Config) defaults() {
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 250 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	c.RetryMin = min(c.RetryMin, c.RetryMax)
	if c.PollInterval <= 0 {
		c.PollInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Check says what is missing or wrong in the configuration.
func (c Config) Check() error {
	var errs []error
	switch {
	case c.NodeProxy == nil || c.NodeProxy.Host == "":
		errs = append(errs, errors.New("--node-proxy: give the node proxy's URL, such as https://fargate-otel-nodeproxy.fargate-otel.svc:8443"))
	case c.NodeProxy.Scheme != "https":
		errs = append(errs, fmt.Errorf("--node-proxy %s: the node proxy is reached over https only", c.NodeProxy.Redacted()))
	}
	for _, v := range []struct{ val, flag string }{
		{c.TokenFile, "--token-file"}, {c.CAFile, "--ca-file"}, {c.Node, "--node"}, {c.Dir, "--dir"},
		{c.Pod.Namespace, "--namespace"}, {c.Pod.Pod, "--pod"}, {c.Pod.PodUID, "--pod-uid"},
	} {
		if v.val == "" {
			errs = append(errs, fmt.Errorf("%s is missing", v.flag))
		}
	}
	if len(c.Containers) == 0 {
		errs = append(errs, errors.New("--containers is missing: name the containers to follow, such as --containers app,worker"))
	}
	seen := map[string]bool{}
	for _, name := range c.Containers {
		id := c.Pod
		id.Container = name
		if err := id.Check(); err != nil {
			errs = append(errs, err)
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("--containers names %q twice", name))
		}
		seen[name] = true
	}
	id := c.Pod
	id.Container = "x"
	if err := id.Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run follows the containers until ctx ends, or, after term is closed, until
// their streams have ended (they have exited) or DrainTimeout has passed.
func Run(ctx context.Context, term <-chan struct{}, cfg Config) error {
	cfg.defaults()
	if err := cfg.Check(); err != nil {
		return err
	}
	k := newKubelet(cfg.NodeProxy, cfg.Node, cfg.TokenFile, cfg.CAFile)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drain := make(chan struct{})
	go func() {
		select {
		case <-term:
		case <-ctx.Done():
			return
		}
		cfg.Logger.Info("stopping: reading the containers' logs to their end first", "at_most", cfg.DrainTimeout)
		close(drain)
		t := time.NewTimer(cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cfg.Logger.Warn("stopping before every container's log was read to its end: the drain timeout passed", "drain_timeout", cfg.DrainTimeout)
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg.Logger.Info("following the containers' logs from the kubelet", "containers", strings.Join(cfg.Containers, ","),
		"pod", cfg.Pod.Namespace+"/"+cfg.Pod.Pod, "node", cfg.Node, "node_proxy", cfg.NodeProxy.Redacted(), "dir", cfg.Dir)
	var wg sync.WaitGroup
	for _, name := range cfg.Containers {
		id := cfg.Pod
		id.Container = name
		f := &follower{cfg: &cfg, id: id, dir: tee.ContainerLogDir(cfg.Dir, id), k: k, restart: -1,
			log: cfg.Logger.With("container", name), bo: backoff{min: cfg.RetryMin, max: cfg.RetryMax}}
		wg.Go(func() { f.run(ctx, drain) })
	}
	wg.Wait()
	return nil
}

// follower follows one container.
type follower struct {
	cfg *Config
	id  tee.Identity
	dir string
	k   *kubelet
	log *slog.Logger

	restart int // of the file being written; -1: none yet
	w       *logrotate.Writer
	pos     position
	done    string // ID of a stopped run read to its end after it stopped

	bo      backoff
	idleBo  backoff              // between looks at a container that waits (to start, to restart)
	told    map[string]time.Time // what was logged, when: each problem is logged once, then once an hour
	failing bool                 // writing the file failed: say so when it works again
}

var errRaced = errors.New("the container restarted while its log was being opened")

func draining(drain <-chan struct{}) bool {
	select {
	case <-drain:
		return true
	default:
		return false
	}
}

func (f *follower) run(ctx context.Context, drain <-chan struct{}) {
	defer f.closeFile()
	for ctx.Err() == nil {
		if f.restart < 0 {
			if err := f.openNewest(); err != nil {
				if !f.retry(ctx, err) {
					return
				}
				continue
			}
		}
		st, err := f.status(ctx)
		if err != nil {
			if !f.retry(ctx, err) {
				return
			}
			continue
		}
		if !st.hasLatest {
			// Not started yet: nothing to read.
			if draining(drain) || !f.idle(ctx, drain) {
				return
			}
			continue
		}
		latest := st.latest
		if f.restart > latest.restart {
			f.say(slog.LevelWarn, "this container's folder has logs of later restarts than the kubelet reports: writing to the kubelet's restart number", "kubelet_restart", latest.restart, "folder_restart", f.restart)
		}
		if f.restart != latest.restart {
			if f.restart < latest.restart && !f.catchUp(ctx, st) {
				continue
			}
			if err := f.open(latest.restart); err != nil {
				if !f.retry(ctx, err) {
					return
				}
			}
			continue
		}
		if !latest.running && f.done == latest.id {
			// Read to its end after it stopped: wait for a restart.
			if draining(drain) || !f.idle(ctx, drain) {
				return
			}
			continue
		}
		f.idleBo.reset()
		began := time.Now()
		clean, err := f.stream(ctx, logOptions{since: f.pos.at}, latest.id, false)
		if err != nil {
			if errors.Is(err, errRaced) {
				continue
			}
			if he := (*httpError)(nil); errors.As(err, &he) && he.code == http.StatusBadRequest {
				// The kubelet has no log to serve yet (waiting to start).
				if draining(drain) || !f.idle(ctx, drain) {
					return
				}
				continue
			}
			if !f.retry(ctx, err) {
				return
			}
			continue
		}
		if clean && !latest.running {
			f.done = latest.id
		}
		// A stream of a running container that ended: it stopped, or a
		// proxy closed the stream. The next status says which. A proxy that
		// ends every stream at once must not make this a busy loop.
		if clean && latest.running && time.Since(began) < time.Second && !sleep(ctx, f.bo.next(), nil) {
			return
		}
	}
}

// catchUp finishes the run of f.restart before the follower moves on to the
// newest run: from previous=true when that is our run, else it says what
// cannot be read, and reads the run before the newest from its start. It
// returns false to try again later.
func (f *follower) catchUp(ctx context.Context, st status) bool {
	prev := st.previous
	if f.restart >= 0 && st.hasPrevious && prev.restart == f.restart {
		clean, err := f.stream(ctx, logOptions{previous: true, since: f.pos.at}, prev.id, true)
		var he *httpError
		switch {
		case errors.Is(err, errRaced):
			return false
		case errors.As(err, &he) && he.code == http.StatusBadRequest:
			f.notice(fmt.Sprintf("the rest of this log (restart %d, after %s) could not be read: the kubelet says %q", f.restart, stamp(f.pos.at), he.msg))
			return true
		case err != nil:
			f.retry(ctx, err)
			return false
		}
		return clean
	}
	if f.restart >= 0 && f.pos.at != 0 {
		f.notice(fmt.Sprintf("the rest of this log (restart %d, after %s) could not be read: the container restarted more than once since, and the kubelet serves the previous run only", f.restart, stamp(f.pos.at)))
		f.say(slog.LevelWarn, "lines of a run were lost: the container restarted more than once while its log could not be read", "restart", f.restart, "after", stamp(f.pos.at))
	}
	if st.hasPrevious && prev.restart > f.restart && prev.restart < st.latest.restart {
		if err := f.open(prev.restart); err != nil {
			f.retry(ctx, err)
			return false
		}
		clean, err := f.stream(ctx, logOptions{previous: true, since: f.pos.at}, prev.id, true)
		var he *httpError
		switch {
		case errors.As(err, &he) && he.code == http.StatusBadRequest:
			return true // gone meanwhile: nothing more to read of it
		case errors.Is(err, errRaced):
			return false
		case err != nil:
			f.retry(ctx, err)
			return false
		}
		return clean
	}
	return true
}

// status is the container's status from the kubelet.
func (f *follower) status(ctx context.Context) (status, error) {
	body, err := f.k.pods(ctx)
	if err != nil {
		return status{}, err
	}
	return parseStatus(body, f.id.Namespace, f.id.Pod, f.id.PodUID, f.id.Container)
}

// openNewest opens the newest file of the container's folder, if any, and
// reads where it ends.
func (f *follower) openNewest() error {
	n, err := newestRestart(f.dir)
	if err != nil {
		return fmt.Errorf("read the log folder %s: %w", f.dir, err)
	}
	if n < 0 {
		return nil
	}
	return f.open(n)
}

// open makes restart n's file the one written, and reads where it ends.
func (f *follower) open(n int) error {
	if f.w != nil && f.restart == n {
		return nil
	}
	f.closeFile()
	if cut, err := repairTail(filepath.Join(f.dir, strconv.Itoa(n)+".log")); err != nil {
		return err
	} else if cut > 0 {
		f.log.Info("cut a torn last line off the log file (an earlier run was killed while writing it); it is read again", "restart", n, "bytes", cut)
	}
	w, err := tee.OpenRestartLog(f.cfg.Dir, f.id, n, f.cfg.Rotate)
	if err != nil {
		return err
	}
	files, err := runFiles(f.dir, n)
	if err != nil {
		_ = w.Close()
		return err
	}
	pos, err := scanPosition(files)
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("read where the log of restart %d ends: %w", n, err)
	}
	f.w, f.restart, f.pos, f.done = w, n, pos, ""
	if pos.at != 0 {
		f.log.Debug("resuming", "restart", n, "after", stamp(pos.at), "lines_at_that_time", pos.count, "open_line_bytes", pos.part)
	}
	return nil
}

func (f *follower) closeFile() {
	if f.w != nil {
		_ = f.w.Close()
		f.w = nil
	}
}

// reload reads the position back from the file after a failed write.
func (f *follower) reload() {
	n := f.restart
	f.closeFile()
	f.restart = -1
	if err := f.open(n); err != nil {
		f.restart = -1
	}
}

// stream reads one containerLogs answer of the run `id` into the file of
// f.restart. clean says the answer ended as the kubelet ends it (the run
// had stopped), not broken off.
func (f *follower) stream(ctx context.Context, o logOptions, id string, previous bool) (clean bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Which run does an answer come from? The one we asked for, if the
	// status still names it once the kubelet has picked it.
	served := func(st status) string {
		if previous {
			if st.hasPrevious {
				return st.previous.id
			}
			return ""
		}
		return st.latest.id
	}
	// A stream that hangs, or a quiet one (the kubelet sends nothing,
	// headers included, until the first line), would hide a restart: look
	// now and then. A previous run has stopped, so its whole log is there at
	// once: its stream going quiet for a poll interval means a hang.
	var progress atomic.Int64
	go func() {
		t := time.NewTicker(f.cfg.PollInterval)
		defer t.Stop()
		last := int64(-1)
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			if previous {
				n := progress.Load()
				if n == last {
					f.log.Info("the log stream of the previous run went quiet before its end: reopening")
					cancel()
					return
				}
				last = n
				continue
			}
			if st, err := f.status(sctx); err == nil && served(st) != id {
				f.log.Info("the container restarted but its log stream did not end: reopening")
				cancel()
				return
			}
		}
	}()
	resp, err := f.k.containerLogs(sctx, f.id.Namespace, f.id.Pod, f.id.Container, o)
	if err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			return false, errRaced
		}
		return false, err
	}
	defer func() { _ = resp.Body.Close() }()
	st, err := f.status(sctx)
	if err != nil {
		return false, err
	}
	if served(st) != id {
		return false, errRaced
	}
	f.ok()

	out := &records{b: make([]byte, 0, 256<<10)}
	c := newCopier(f.pos, o.since != 0, out)
	c.gap = func(at, next int64, missing int) {
		out.notice(time.Now(), fmt.Sprintf("log lines between %s and %s may be missing: the kubelet no longer had %d of the lines at %s (its log was rotated while the stream was down)", stamp(at), stamp(next), missing, stamp(at)))
		f.say(slog.LevelWarn, "log lines may be missing: the kubelet rotated the container's log while the stream was down", "after", stamp(at), "before", stamp(next))
	}
	var werr error
	flush := func() error {
		if len(out.b) == 0 {
			return nil
		}
		if _, err := f.w.Write(out.b); err != nil {
			werr = err
			return err
		}
		out.b = out.b[:0]
		f.pos = c.pos
		if f.failing {
			f.failing = false
			f.log.Info("the log file is writable again; resumed from the last line written")
		}
		return nil
	}
	r := newLineReader(resp.Body, flush)
	got := false
	for {
		p, err := r.next()
		if err != nil {
			if ferr := flush(); ferr != nil || werr != nil {
				return false, f.writeFailed(werr)
			}
			if got {
				f.bo.reset()
			}
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if sctx.Err() != nil {
				return false, errRaced // the poller saw a restart
			}
			return false, fmt.Errorf("the log stream broke: %w", err)
		}
		if werr != nil {
			return false, f.writeFailed(werr)
		}
		got = true
		progress.Add(1)
		c.feed(p)
		if len(out.b) >= 192<<10 {
			if err := flush(); err != nil {
				return false, f.writeFailed(err)
			}
		}
	}
}

// writeFailed handles a failed write: the file holds whole records only
// (logrotate cuts a failed write back), so the follower reads where it ends
// and asks the kubelet again from there: nothing is lost while the kubelet
// has the lines.
func (f *follower) writeFailed(err error) error {
	if !f.failing {
		f.failing = true
		f.log.Warn("cannot write the log file; retrying from the last line written, the kubelet keeps the rest meanwhile", "error", err)
	}
	f.reload()
	return fmt.Errorf("write the log file: %w", err)
}

// notice writes a line of the follower's own into the current file.
func (f *follower) notice(text string) {
	if f.w == nil {
		return
	}
	var r records
	r.notice(time.Now(), text)
	if _, err := f.w.Write(r.b); err != nil {
		f.log.Warn("cannot write a notice to the log file", "notice", text, "error", err)
	}
}

// say logs a problem once, then at most once an hour.
func (f *follower) say(level slog.Level, msg string, args ...any) {
	if f.told == nil {
		f.told = map[string]time.Time{}
	}
	if at, ok := f.told[msg]; ok && time.Since(at) < time.Hour {
		return
	}
	f.told[msg] = time.Now()
	f.log.Log(context.Background(), level, msg, args...)
}

// ok forgets the problems logged: the next one is logged again.
func (f *follower) ok() {
	if len(f.told) > 0 {
		f.told = nil
		f.log.Info("reading the container's log again")
	}
}

// retry logs err (once) and waits before the next attempt: a refusal waits
// RetryMax (or what a 429 asks), anything else the next backoff. It returns
// false when ctx ended.
func (f *follower) retry(ctx context.Context, err error) bool {
	wait := f.bo.next()
	if he, ok := refused(err); ok {
		wait = max(f.cfg.RetryMax, he.retryAfter)
		f.say(slog.LevelError, fmt.Sprintf("the node proxy refused the request (%d): %s", he.code, advice(he.code)), "error", err, "retry_in", wait)
	} else {
		f.say(slog.LevelWarn, "cannot read the container's log from the kubelet; retrying with backoff", "error", err)
	}
	return sleep(ctx, wait, nil)
}

// idle waits a while for something to happen to the container (to start,
// to restart): 1 s, then longer, up to 10 s (or RetryMax), so that a
// container that has finished for good costs the node proxy little. It
// returns false when ctx ended or the drain began.
func (f *follower) idle(ctx context.Context, drain <-chan struct{}) bool {
	if f.idleBo.max == 0 {
		f.idleBo = backoff{min: min(time.Second, f.cfg.RetryMax), max: min(10*time.Second, f.cfg.RetryMax)}
	}
	return sleep(ctx, f.idleBo.next(), drain)
}

func sleep(ctx context.Context, d time.Duration, drain <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-drain:
		return false
	case <-t.C:
		return true
	}
}

// backoff is exponential with jitter: each wait is drawn from the upper half
// of the current step, so that followers of many pods do not retry in step.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }

func stamp(ns int64) string {
	if ns == 0 {
		return "the start"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}
