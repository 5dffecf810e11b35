package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
)

// A pod's sidecar must never hold its app back. The kubelet starts a pod's
// app containers only once it has seen its native sidecars running, so a
// collector that exits at start (a port the app uses without declaring it,
// an exporter setting only the collector can check, a CA file not mounted
// yet) would crash-loop and keep the app in Init for good; and while a
// sidecar is restarted or backing off, the pod is not Ready, which takes
// the app out of its Services. So in a sidecar the process stays up through
// any failure of the collector: it says what failed and what to change,
// answers the liveness probe (a restart would cost the app its readiness
// and could not fix more than a retry does), starts the collector again
// with a growing pause, and exits 0 on SIGTERM.

// Env vars the injector sets on the sidecar.
const (
	// sidecarEnv turns the sidecar behaviour on (true).
	sidecarEnv = "FARGATE_OTEL_SIDECAR"
	// healthEndpointEnv is where the liveness probe is answered while the
	// collector is not running: health_check's endpoint.
	healthEndpointEnv     = "FARGATE_OTEL_HEALTH_ENDPOINT"
	defaultHealthEndpoint = ":13133"
)

const (
	firstRetry = time.Second
	maxRetry   = time.Minute
	// goodRun is how long a collector must have run for the pause before
	// the next start to begin again at firstRetry.
	goodRun = 10 * time.Minute
)

type supervisor struct {
	log        *slog.Logger
	health     string
	firstRetry time.Duration
	maxRetry   time.Duration
	hooks      runHooks
}

// runHooks let the live config (live.go) follow and steer the runs.
type runHooks interface {
	// starting is called before each start, with what stops that run.
	starting(stop context.CancelFunc)
	// stopped is called when a run ended; true: it was stopped for a
	// config swap, and the next starts at once.
	stopped(err error) bool
	// standingIn is called when the collector cannot run.
	standingIn(err error)
	// woken cuts a stand-in wait short (a new config to try).
	woken() <-chan struct{}
}

// noHooks: a sidecar without a fleet agent.
type noHooks struct{}

func (noHooks) starting(context.CancelFunc) {}
func (noHooks) stopped(error) bool          { return false }
func (noHooks) standingIn(error)            {}
func (noHooks) woken() <-chan struct{}      { return nil }

func newSupervisor(w io.Writer, health string) *supervisor {
	if health == "" {
		health = defaultHealthEndpoint
	}
	return &supervisor{log: jsonLogger(w), health: health, firstRetry: firstRetry, maxRetry: maxRetry, hooks: noHooks{}}
}

// jsonLogger writes lines shaped like the collector's own JSON logs.
func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			a.Key = "ts"
		case slog.LevelKey:
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}))
}

// run starts the collector with start until SIGTERM (or SIGINT): start
// blocks while the collector runs and returns when it stops; the context
// is cancelled by the signal.
func (s *supervisor) run(start func(context.Context) error) {
	// The pod is ending: no drain may be cut short for a config swap.
	ctx, stop := watchSignals(drain.Ending)
	defer stop()
	wait := s.firstRetry
	for attempt := 1; ; attempt++ {
		began := time.Now()
		runCtx, stopRun := context.WithCancel(ctx)
		s.hooks.starting(stopRun)
		err := start(runCtx)
		stopRun()
		swapped := s.hooks.stopped(err)
		if terminated(ctx) {
			if err != nil {
				s.log.Warn("The collector stopped after SIGTERM with an error", "error", err.Error())
			}
			return
		}
		if swapped {
			// Stopped for a live config swap: the next runs the new config.
			attempt, wait = 0, s.firstRetry
			continue
		}
		if err == nil {
			err = errors.New("the collector stopped by itself: a component failed while it ran (see the lines above)")
		}
		if time.Since(began) > goodRun {
			wait = s.firstRetry
		}
		s.log.Error(fmt.Sprintf("The collector could not run. This process stays up so that the pod's app is not held back, and starts the collector again in %s.", wait),
			"error", err.Error(), "what to do", advice(err), "attempt", attempt, "retry_in", wait.String())
		s.hooks.standingIn(err)
		if !s.standIn(ctx, wait, err) {
			return
		}
		wait = min(2*wait, s.maxRetry)
	}
}

// watchSignals returns a context cancelled by SIGTERM or SIGINT, after
// onTerm ran. SIGHUP, which the running collector takes as "reload", is
// otherwise ignored rather than fatal.
func watchSignals(onTerm func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				if sig != syscall.SIGHUP {
					onTerm()
					cancel()
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

// terminated reports whether the collector stopped because of a signal:
// only this process catches SIGTERM in a sidecar (run.go), and it cancels
// ctx before the collector can stop.
func terminated(ctx context.Context) bool { return ctx.Err() != nil }

// standIn answers the liveness probe on s.health for wait, or until ctx is
// done (then it returns false) or a new config is to be tried. The answer is 200 with the reason, so that
// the kubelet does not restart the sidecar: a restart would not fix more
// than the next start does, and while a sidecar waits to be restarted its
// pod is not Ready.
func (s *supervisor) standIn(ctx context.Context, wait time.Duration, cause error) bool {
	body, _ := json.Marshal(map[string]string{
		"status":   "Server not running: the collector could not run and starts again soon; see its log",
		"error":    cause.Error(),
		"retry_at": time.Now().Add(wait).UTC().Format(time.RFC3339),
	})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	var wg sync.WaitGroup
	if ln, err := net.Listen("tcp", s.health); err == nil {
		wg.Go(func() { _ = srv.Serve(ln) })
	} else {
		s.log.Warn("Cannot answer the liveness probe while the collector is down", "endpoint", s.health, "error", err.Error())
	}
	defer func() {
		_ = srv.Close()
		wg.Wait()
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-s.hooks.woken():
		return true
	}
}

var (
	listenAddr  = regexp.MustCompile(`listen tcp ([^ ]+): bind: address already in use`)
	missingFile = regexp.MustCompile(`open ([^:]+): no such file or directory`)
)

// advice says what to change for err, as far as the error tells.
func advice(err error) string {
	msg := err.Error()
	switch {
	case listenAddr.MatchString(msg):
		addr := listenAddr.FindStringSubmatch(msg)[1]
		return fmt.Sprintf("Another process of the pod already listens on %s (a pod's containers share one network): "+
			"move the app off that port, or declare it in the app container's ports so that the injector reports the conflict "+
			"(or opt the pod out with the label fargate-otel.io/inject=disabled). The collector takes the port once it is free.", addr)
	case missingFile.MatchString(msg):
		path := missingFile.FindStringSubmatch(msg)[1]
		return fmt.Sprintf("The file %s is missing. A file mounted from a ConfigMap or Secret shows up within a minute or two "+
			"of the object being created (the node proxy's CA is published in each namespace by the injector), and the collector "+
			"starts once it is there. A file named in an exporter's settings comes from the exporters ConfigMap "+
			"(annotation fargate-otel.io/exporters): fix the settings and recreate the pod.", path)
	case strings.Contains(msg, "failed to get config"), strings.Contains(msg, "invalid configuration"):
		return "The configuration is invalid. When the pod names an exporters ConfigMap (annotation fargate-otel.io/exporters), " +
			"fix the exporter's settings there and recreate the pod; " +
			"`fargate-otel-collector validate --config=fargate:env:FARGATE_OTEL_SETTINGS` in the sidecar shows the error without starting anything."
	case strings.Contains(msg, "permission denied"):
		return "The collector (uid 65532) may not read or write a file it needs: the logs volume and its .fargate-otel-state folder " +
			"must stay writable by it; check the pod's fsGroup and any init container that changes their permissions."
	default:
		return "The error names the component that failed; if it comes from the exporters ConfigMap (annotation " +
			"fargate-otel.io/exporters), fix it there and recreate the pod."
	}
}
