//go:build !windows

package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
)

// Whatever a component's shutdown waits for, the collector must be gone
// before the kubelet's grace period ends: a SIGKILL at the end of it
// (exit 137) is what the pod's status then shows, and a native sidecar that
// is still stopping holds its pod in Terminating that long. So, from the
// first SIGTERM (or SIGINT), the process gives its shutdown a deadline and
// exits at it, saying what it was still waiting for. The drain's own
// timeout, shorter, normally ends the wait for data first.

const (
	// shutdownTimeoutEnv is the deadline, a Go duration (e.g. 28s): the
	// injector sets it from the pod's terminationGracePeriodSeconds minus a
	// margin.
	shutdownTimeoutEnv = "FARGATE_OTEL_SHUTDOWN_TIMEOUT"
	// defaultShutdownTimeout fits the default grace period (30s) with the
	// drain's default timeout (20s) and the rest of the shutdown in it.
	defaultShutdownTimeout = 25 * time.Second
)

// Exit codes of a shutdown cut short. A sidecar exits 0 as it does on any
// SIGTERM: its pod asked it to stop, what was lost is in the log, and an
// error would only tell a Job's failure policy or a reader of the pod's
// status that the app failed. A collector run on its own exits 1, as on any
// failed shutdown.
const (
	hardStopSidecarCode = 0
	hardStopCode        = 1
)

// shutdownTimeout reads the deadline from value (the env var), falling back
// to the default with a warning when value is not a positive duration.
func shutdownTimeout(value string) (time.Duration, string) {
	if value == "" {
		return defaultShutdownTimeout, ""
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return defaultShutdownTimeout, fmt.Sprintf("%s=%q is not a positive duration such as 28s; using %s",
			shutdownTimeoutEnv, value, defaultShutdownTimeout)
	}
	return d, ""
}

// hardStop ends the process when its shutdown outlives the deadline.
type hardStop struct {
	log      *slog.Logger
	timeout  time.Duration
	code     int
	exit     func(int)
	pending  func() []string
	signals  chan os.Signal
	disarmed chan struct{}
}

func newHardStop(log *slog.Logger, timeout time.Duration, code int) *hardStop {
	return &hardStop{log: log, timeout: timeout, code: code, exit: os.Exit, pending: drain.Pending,
		signals: make(chan os.Signal, 1), disarmed: make(chan struct{})}
}

// arm starts watching for SIGTERM and SIGINT; the returned func stops it.
func (h *hardStop) arm() (disarm func()) {
	signal.Notify(h.signals, syscall.SIGTERM, syscall.SIGINT)
	go h.watch()
	return func() {
		signal.Stop(h.signals)
		close(h.disarmed)
	}
}

func (h *hardStop) watch() {
	var sig os.Signal
	select {
	case sig = <-h.signals:
	case <-h.disarmed:
		return
	}
	t := time.NewTimer(h.timeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.disarmed:
		return
	}
	pending := h.pending()
	if len(pending) == 0 {
		pending = []string{"unknown (no drain extension in the config follows the shutdown)"}
	}
	h.log.Error(fmt.Sprintf("The collector did not stop within %s of %s: it exits now, before the kubelet kills it; what it still waited for is lost or left undone. "+
		"A component whose shutdown does not return is a bug to report; a longer terminationGracePeriodSeconds gives the shutdown more time (%s).",
		h.timeout, signalName(sig), shutdownTimeoutEnv),
		"still_waiting_for", pending, "exit_code", h.code)
	h.exit(h.code)
}

func signalName(sig os.Signal) string {
	if sig == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}
