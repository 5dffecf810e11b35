package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/logrotate"
)

// sweep is the logrotate subcommand: a sidecar-style sweeper for files that
// an app writes itself into a volume.
func sweep(args []string, stdout, stderr io.Writer) int {
	log := newLogger(stderr)
	fs := flag.NewFlagSet("fargate-otel-tee logrotate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		o        logrotate.SweepOptions
		mode     string
		interval time.Duration
		once     bool
	)
	fs.StringVar(&o.Dir, "dir", "", "folder to sweep, recursively (required)")
	fs.StringVar(&o.Pattern, "pattern", "*.log", "glob on the file names of active logs")
	o.MaxSize = logrotate.DefaultMaxSize
	fs.Func("max-size", "rotate active logs above this size (default 10Mi)", func(s string) (err error) {
		o.MaxSize, err = logrotate.ParseSize(s)
		return err
	})
	fs.IntVar(&o.MaxBackups, "max-backups", logrotate.DefaultMaxBackups, "backups kept per log")
	fs.Func("budget", "bytes for everything under --dir (required)", func(s string) (err error) {
		o.Budget, err = logrotate.ParseSize(s)
		return err
	})
	fs.StringVar(&mode, "mode", string(logrotate.CopyTruncate), "copytruncate (the app keeps its file open) or rename (the app reopens by name)")
	fs.DurationVar(&interval, "interval", 10*time.Second, "time between sweeps")
	fs.BoolVar(&once, "once", false, "sweep once and exit (1 if anything failed)")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		sweepUsage(stdout)
		return 0
	}
	if err == nil {
		switch {
		case fs.NArg() > 0:
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		case o.Dir == "":
			err = errors.New("--dir is required: the folder the app writes its log files into")
		case o.Budget <= 0:
			err = errors.New("--budget is required: stay below the volume's sizeLimit, e.g. --budget 400Mi for a 500Mi volume")
		case mode != string(logrotate.CopyTruncate) && mode != string(logrotate.Rename):
			err = fmt.Errorf("--mode %q: use copytruncate or rename", mode)
		case interval <= 0:
			err = fmt.Errorf("--interval %v: use a positive duration such as 10s", interval)
		}
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "fargate-otel-tee logrotate: %v\n\n", err)
		sweepUsage(stderr)
		return 2
	}
	o.Mode = logrotate.Mode(mode)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		r := logrotate.Sweep(o)
		for _, p := range r.Rotated {
			log.Info("rotated", "file", p)
		}
		for _, p := range r.Deleted {
			log.Info("deleted old backup", "file", p)
		}
		for _, p := range r.Truncated {
			log.Warn("emptied a log to stay under the budget: its backups were not enough", "file", p)
		}
		for _, e := range r.Errors {
			log.Warn("sweep", "error", e)
		}
		if once {
			if len(r.Errors) > 0 {
				return 1
			}
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-ticker.C:
		}
	}
}

func sweepUsage(w io.Writer) {
	_, _ = fmt.Fprint(w, `usage: fargate-otel-tee logrotate --dir DIR --budget SIZE [flags]

Rotates the log files an app writes itself under DIR (to NAME.<YYYYMMDD-HHMMSS>) and
deletes the oldest backups so that everything under DIR stays within the budget.

flags:
  --dir DIR            folder to sweep, recursively (required)
  --budget SIZE        bytes for everything under DIR (required; sizes: 123, 64Ki, 10Mi, 1Gi)
  --max-size SIZE      rotate active logs above this size (default 10Mi)
  --max-backups N      backups kept per log (default 4)
  --pattern GLOB       file names of active logs (default *.log)
  --mode MODE          copytruncate (default: the app keeps its file open, opened with O_APPEND)
                       or rename (the app reopens its file by name)
  --interval DURATION  time between sweeps (default 10s)
  --once               sweep once and exit, 1 if anything failed
`)
}
