//go:build !windows

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
	"github.com/fargate-otel/fargate-otel/fleetagent/fleetstatus"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Live config: the fleet's settings (sidecarconfig.Overrides) laid over
// the pod's own, applied without re-creating the pod. The collector runs
// in this process (run.go), so a swap is a stop of the running collector
// (a graceful shutdown: file_log saves its offsets, the drain sends the
// queues the next config drops) and a start with the new settings, which
// the `fargate` config provider lays over the pod's own (applyActive). A
// config that does not start is rolled back to the last one that ran.

const (
	// healthyWithin is how long a new config's collector has to get every
	// pipeline running.
	healthyWithin = 30 * time.Second
	// stopWithin bounds the wait for the running collector to stop for a
	// swap: its drain (at most the drain timeout) and shutdown.
	stopWithin = 90 * time.Second
)

// overridesFile is where the last applied live settings are kept, under
// the collector's state folder on the logs volume: a container restart
// starts with them, whether or not the fleet server answers.
func overridesFile(storageDir string) string {
	return filepath.Join(storageDir, "fleet", "overrides.json")
}

// candidate is one config the collector may run.
type candidate struct {
	body      []byte // the live settings as the fleet sent them; nil: none
	overrides sidecarconfig.Overrides
	rendered  []byte
	queues    map[drain.QueueRef]bool // the queues on disk it sends
}

// live is the sidecar's config state, shared by the supervisor (which
// starts and stops collectors), the config provider and the agent.
type live struct {
	log       *slog.Logger
	tracker   *fleetstatus.Tracker
	bootstrap sidecarconfig.Config
	// bootErr is why the pod's settings cannot be used (live settings are
	// then refused too).
	bootErr   error
	statePath string
	// bootHash names the config the pod's settings render.
	bootHash string
	// validate checks a candidate as `validate` does, in-process.
	validate func(context.Context, sidecarconfig.Overrides) error
	// onConfig is called when the collector runs another config.
	onConfig func()

	mu       sync.Mutex
	active   candidate // what the next start runs
	good     candidate // the last config that ran
	launched candidate // what the current (last) start rendered
	running  candidate // what the collector runs now
	stop     context.CancelFunc
	swapping bool // the current run is being stopped for a swap
	gen      int  // starts so far
	ended    int  // the last start whose run ended
	endErr   error
	changed  chan struct{} // closed and replaced on every start and end
	wake     chan struct{} // cuts the supervisor's stand-in wait short
}

// newLive starts from the pod's settings (bootstrap) and, when there are
// some, the live settings saved by an earlier run of this container.
func newLive(log *slog.Logger, settings []byte, settingsErr error) *live {
	l := &live{log: log, changed: make(chan struct{}), wake: make(chan struct{}, 1), validate: func(context.Context, sidecarconfig.Overrides) error { return nil }, onConfig: func() {}}
	if settingsErr == nil {
		l.bootstrap, settingsErr = sidecarconfig.Decode(settings)
	}
	if settingsErr != nil {
		l.bootErr = fmt.Errorf("the pod's collector settings cannot be read, so live settings cannot be laid over them: %w", settingsErr)
		return l
	}
	boot, err := l.candidate(nil)
	if err != nil {
		l.bootErr = fmt.Errorf("the pod's collector settings: %w", err)
		return l
	}
	l.bootHash = sidecarconfig.Hash(boot.rendered)
	l.active = boot
	l.statePath = overridesFile(l.bootstrap.StorageDir)
	if body, err := os.ReadFile(l.statePath); err == nil {
		if c, err := l.candidate(body); err != nil {
			log.Warn("The live settings saved by an earlier run no longer apply; the collector starts with the pod's own settings",
				"file", l.statePath, "error", err.Error())
		} else {
			l.active = c
			log.Info("The collector starts with the live settings the fleet sent earlier", "file", l.statePath, "config_hash", sidecarconfig.Hash(c.rendered))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("Cannot read the saved live settings; the collector starts with the pod's own settings", "file", l.statePath, "error", err.Error())
	}
	l.good, l.launched, l.running = l.active, l.active, l.active
	return l
}

// candidate renders body (Overrides JSON; nil: none) over the pod's settings.
func (l *live) candidate(body []byte) (candidate, error) {
	ov, err := sidecarconfig.ParseOverrides(body)
	if err != nil {
		return candidate{}, err
	}
	cfg, err := ov.Apply(l.bootstrap)
	if err != nil {
		return candidate{}, err
	}
	rendered, err := sidecarconfig.Render(cfg)
	if err != nil {
		return candidate{}, err
	}
	queues, err := diskQueues(rendered)
	if err != nil {
		return candidate{}, err
	}
	return candidate{body: body, overrides: ov, rendered: rendered, queues: queues}, nil
}

// applyActive is the config provider's hook: the next collector runs the
// active live settings.
func (l *live) applyActive(cfg sidecarconfig.Config) (sidecarconfig.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.launched = l.active
	return l.active.overrides.Apply(cfg)
}

// Applied is the hash of the live settings the collector started with
// (nil when none were saved).
func (l *live) Applied() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active.body == nil {
		return nil
	}
	return bodyHash(l.active.body)
}

// Effective is the rendered config the collector runs.
func (l *live) Effective() ([]byte, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running.rendered == nil {
		return nil, ""
	}
	return l.running.rendered, sidecarconfig.Hash(l.running.rendered)
}

// healthChanged follows the tracker: once a collector is running, it runs
// what it was launched with.
func (l *live) healthChanged() {
	if !l.tracker.Snapshot().Running {
		return
	}
	l.mu.Lock()
	changed := !bytes.Equal(l.running.rendered, l.launched.rendered)
	l.running = l.launched
	l.mu.Unlock()
	if changed {
		l.onConfig()
	}
}

// The supervisor's hooks (sidecar.go).

func (l *live) starting(stop context.CancelFunc) {
	l.tracker.Begin(time.Now())
	// A swap planned for a run that ended without a drain is void.
	drain.CancelSwap()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stop = stop
	l.swapping = false
	l.gen++
	select {
	case <-l.wake:
	default:
	}
	l.notifyLocked()
}

func (l *live) stopped(err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	swap := l.swapping
	l.swapping, l.stop = false, nil
	l.ended, l.endErr = l.gen, err
	if err == nil {
		l.endErr = errors.New("the collector stopped")
	}
	l.notifyLocked()
	return swap
}

func (l *live) standingIn(err error) { l.tracker.Down(err.Error()) }

func (l *live) woken() <-chan struct{} { return l.wake }

func (l *live) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// swapTo makes c the active config and stops the running collector so
// that the supervisor starts the next with it; it returns the number of
// that next start.
func (l *live) swapTo(c candidate) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active = c
	if l.stop != nil {
		l.swapping = true
		drain.PlanSwap(c.queues)
		l.stop()
	} else {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return l.gen + 1
}

// Apply validates the live settings body and swaps the collector to them;
// applying is called when the swap begins. A config that does not run
// within healthyWithin is rolled back to the last good one.
func (l *live) Apply(ctx context.Context, body []byte, applying func()) error {
	if l.bootErr != nil {
		return l.bootErr
	}
	c, err := l.candidate(body)
	if err != nil {
		return err
	}
	l.mu.Lock()
	same := bytes.Equal(c.rendered, l.running.rendered) && bytes.Equal(l.active.rendered, l.running.rendered)
	if same {
		// Nothing the collector runs changes: no restart.
		l.active, l.good, l.launched, l.running = c, c, c, c
	}
	l.mu.Unlock()
	if same {
		return l.save(c)
	}
	if err := l.validate(ctx, c.overrides); err != nil {
		return fmt.Errorf("the collector refuses the config the live settings give (nothing changed): %w", err)
	}
	applying()
	l.log.Info("Swapping the collector to the fleet's live settings", "config_hash", sidecarconfig.Hash(c.rendered))
	if err := l.await(ctx, l.swapTo(c)); err != nil {
		l.mu.Lock()
		good := l.good
		l.mu.Unlock()
		l.log.Warn("The collector did not run with the fleet's live settings; rolling back to the last good config",
			"error", err.Error(), "config_hash", sidecarconfig.Hash(good.rendered))
		l.swapTo(good)
		return err
	}
	l.mu.Lock()
	l.good = c
	l.mu.Unlock()
	return l.save(c)
}

// await waits for start number gen to run, or fails with why it did not.
func (l *live) await(ctx context.Context, gen int) error {
	stopDeadline := time.NewTimer(stopWithin)
	defer stopDeadline.Stop()
	for {
		l.mu.Lock()
		cur, changed := l.gen, l.changed
		l.mu.Unlock()
		if cur >= gen {
			break
		}
		select {
		case <-changed:
		case <-stopDeadline.C:
			return fmt.Errorf("the running collector did not stop within %s for the swap", stopWithin)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ready := l.tracker.Ready()
	healthy := time.NewTimer(healthyWithin)
	defer healthy.Stop()
	for {
		l.mu.Lock()
		cur, ended, endErr, changed := l.gen, l.ended, l.endErr, l.changed
		l.mu.Unlock()
		switch {
		case ended >= gen:
			return fmt.Errorf("the collector did not start: %w", endErr)
		case cur > gen:
			return errors.New("the collector was started again before it ran")
		}
		select {
		case <-ready:
			return nil
		case <-changed:
		case <-healthy.C:
			return fmt.Errorf("the collector's pipelines were not all running within %s", healthyWithin)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// save keeps c's live settings on the logs volume for the next start.
func (l *live) save(c candidate) error {
	if c.body == nil {
		return nil
	}
	if err := writeFileAtomic(l.statePath, c.body); err != nil {
		return fmt.Errorf("the live settings run, but cannot be saved for the next start of the container: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".overrides-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// diskQueues lists the sending queues on disk of a rendered config: every
// exporter with sending_queue.storage set, once per pipeline it is in.
func diskQueues(rendered []byte) (map[drain.QueueRef]bool, error) {
	var doc struct {
		Exporters map[string]struct {
			SendingQueue *struct {
				Enabled *bool  `yaml:"enabled"`
				Storage string `yaml:"storage"`
			} `yaml:"sending_queue"`
		} `yaml:"exporters"`
		Service struct {
			Pipelines map[string]struct {
				Exporters []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(rendered, &doc); err != nil {
		return nil, fmt.Errorf("read the rendered config: %w", err)
	}
	out := map[drain.QueueRef]bool{}
	for pipe, p := range doc.Service.Pipelines {
		sig, _, _ := strings.Cut(pipe, "/")
		for _, id := range p.Exporters {
			q := doc.Exporters[id].SendingQueue
			if q == nil || q.Storage == "" || (q.Enabled != nil && !*q.Enabled) {
				continue
			}
			out[drain.QueueRef{Exporter: id, Signal: sig}] = true
		}
	}
	return out, nil
}

// bodyHash is the remote config hash of live settings: the SHA-256 of the
// file the fleet sent.
func bodyHash(body []byte) []byte {
	sum := sha256.Sum256(body)
	return sum[:]
}

// settingsURI is the fargate: URI among the --config flags, "" when none.
func settingsURI(args []string) string {
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(args[i], "-")
		var v string
		switch {
		case a == "-config" || a == "config":
			if i+1 < len(args) {
				v = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "-config="):
			v = strings.TrimPrefix(a, "-config=")
		case strings.HasPrefix(a, "config="):
			v = strings.TrimPrefix(a, "config=")
		}
		if strings.HasPrefix(v, sidecarconfig.SettingsScheme+":") {
			return v
		}
	}
	return ""
}
