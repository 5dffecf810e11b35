// Command fargate-otel-tee runs a command in front of which it is put, passes
// its stdout and stderr through unchanged and writes them, in the CRI format of
// containerd, where the kubelet would: <log-dir>/<namespace>_<pod>_<uid>/
// <container>/<restart>.log, rotated under a disk budget.
//
//	fargate-otel-tee [flags] -- CMD [ARGS...]   wrap a command
//	app | fargate-otel-tee [flags]              tee stdin (the shell pipeline case)
//	fargate-otel-tee install DIR                copy this executable into DIR
//	fargate-otel-tee logrotate --dir D ...      rotate files an app writes itself
//	fargate-otel-tee follow --node-proxy URL ...  follow containers' logs from the kubelet
//	                                            (runs fargate-otel-follow, next to it in the image)
//
// See the README, section "The wrapper".
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/fargate-otel/fargate-otel/logrotate"
	"github.com/fargate-otel/fargate-otel/tee"
)

const defaultLogDir = "/fargate-otel/logs"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func newLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, nil)).With("logger", "fargate-otel-tee")
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "install":
			return install(args[1:], stdout, stderr)
		case "logrotate":
			return sweep(args[1:], stdout, stderr)
		case "follow":
			return follow(args[1:], stderr)
		}
	}
	return wrap(args, getenv, stdout, stderr)
}

// wrapFlags are the wrapper's options as given.
type wrapFlags struct {
	logDir     string
	id         tee.Identity
	podinfoDir string
	format     tee.Format
	stream     tee.Stream
	maxSize    int64
	maxBackups int
	budget     int64
	budgetSet  bool
	rate       tee.RateLimit
}

func newWrapFlagSet(f *wrapFlags, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("fargate-otel-tee", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	logDir := getenv(tee.EnvLogDir)
	if logDir == "" {
		logDir = defaultLogDir
	}
	fs.StringVar(&f.logDir, "log-dir", logDir, "root of the logs volume (env "+tee.EnvLogDir+")")
	fs.StringVar(&f.id.Container, "container", "", "container name (env "+tee.EnvContainer+")")
	fs.StringVar(&f.id.Namespace, "namespace", "", "pod namespace (env "+tee.EnvNamespace+", or podinfo file namespace)")
	fs.StringVar(&f.id.Pod, "pod", "", "pod name (env "+tee.EnvPod+", or podinfo file name)")
	fs.StringVar(&f.id.PodUID, "pod-uid", "", "pod UID (env "+tee.EnvPodUID+", or podinfo file uid)")
	fs.StringVar(&f.podinfoDir, "podinfo-dir", "", "Downward API volume with the files namespace, name and uid")
	f.format = tee.CRI
	fs.Func("format", "cri (containerd's format, default) or raw", func(s string) (err error) {
		f.format, err = tee.ParseFormat(s)
		return err
	})
	fs.Func("stream", "stdin mode: the stream stdin is, stdout (default) or stderr", func(s string) (err error) {
		f.stream, err = tee.ParseStream(s)
		return err
	})
	f.maxSize = logrotate.DefaultMaxSize
	fs.Func("max-size", "rotate the log file at this size (default 10Mi)", func(s string) (err error) {
		f.maxSize, err = logrotate.ParseSize(s)
		if err == nil && f.maxSize == 0 {
			err = errors.New("max size must be above 0")
		}
		return err
	})
	fs.IntVar(&f.maxBackups, "max-backups", logrotate.DefaultMaxBackups, "rotated files kept")
	fs.Func("budget", "bytes for all of the container's log files (default (max-backups+1) x max-size)", func(s string) (err error) {
		f.budget, err = logrotate.ParseSize(s)
		f.budgetSet = true
		return err
	})
	for _, r := range rateFlags(&f.rate) {
		fs.Func(r.flag, r.usage+" (env "+r.env+")", r.parse)
	}
	return fs
}

// rateFlag is one of the rate limit's flags, with its environment variable.
type rateFlag struct {
	flag, env, usage string
	parse            func(string) error
}

func rateFlags(r *tee.RateLimit) []rateFlag {
	lines := func(dst *int64) func(string) error {
		return func(s string) (err error) { *dst, err = tee.ParseRate(s); return err }
	}
	size := func(dst *int64) func(string) error {
		return func(s string) (err error) { *dst, err = logrotate.ParseSize(s); return err }
	}
	return []rateFlag{
		{"rate-limit-lines", tee.EnvRateLimitLines, "lines per second the log file takes; more leave the file only (default: no limit)", lines(&r.Lines)},
		{"rate-limit-lines-burst", tee.EnvRateLimitLinesBurst, "lines above the rate taken at once (default: one second's worth)", lines(&r.LinesBurst)},
		{"rate-limit-bytes", tee.EnvRateLimitBytes, "bytes per second the log file takes, such as 1Mi (default: no limit)", size(&r.Bytes)},
		{"rate-limit-bytes-burst", tee.EnvRateLimitBytesBurst, "bytes above the rate taken at once (default: one second's worth)", size(&r.BytesBurst)},
	}
}

// rateFromEnv reads the rate limit's environment variables for the flags
// not given, and checks the result.
func rateFromEnv(fs *flag.FlagSet, r *tee.RateLimit, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, rf := range rateFlags(r) {
		if v := getenv(rf.env); v != "" && !set[rf.flag] {
			if err := rf.parse(v); err != nil {
				return fmt.Errorf("%s: %w", rf.env, err)
			}
		}
	}
	return r.Check()
}

// splitCommand separates the wrapper's arguments from the command's at the
// first "--".
func splitCommand(args []string) (flags, command []string, dashes bool) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

func wrap(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	log := newLogger(stderr)
	var f wrapFlags
	fs := newWrapFlagSet(&f, getenv)
	flagArgs, command, dashes := splitCommand(args)
	err := fs.Parse(flagArgs)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err == nil && len(fs.Args()) > 0 {
		if dashes {
			err = fmt.Errorf("unexpected %q before --: flags go before --, the command after it", fs.Args()[0])
		} else {
			command = fs.Args() // a command without "--" works too
		}
	}
	if err == nil && f.maxBackups < 0 {
		err = fmt.Errorf("--max-backups %d: use 0 or more", f.maxBackups)
	}
	if err == nil {
		err = rateFromEnv(fs, &f.rate, getenv)
	}
	cfg := tee.Config{Command: command, StdinStream: f.stream, Format: f.format, Logger: log, RateLimit: f.rate}
	if err != nil {
		if len(command) == 0 {
			_, _ = fmt.Fprintf(stderr, "fargate-otel-tee: %v\n\n", err)
			usage(stderr)
			return 2
		}
		// Never keep the app from running: run it, without the log file.
		log.Error("bad arguments; running the command without writing a log file", "error", err)
		return tee.Run(cfg)
	}

	w, err := openLog(f, getenv, log)
	if err != nil {
		log.Warn("not writing a log file; the command's output only passes through", "reason", err)
	} else {
		defer func() { _ = w.Close() }()
		cfg.Log = w
	}
	return tee.Run(cfg)
}

func openLog(f wrapFlags, getenv func(string) string, log *slog.Logger) (*logrotate.Writer, error) {
	id, podinfoErr := tee.ResolveIdentity(f.id, getenv, f.podinfoDir)
	if missing := id.Missing(); len(missing) > 0 {
		err := fmt.Errorf("missing %s: pass the flags, or set %s, %s, %s and %s, or --podinfo-dir with a Downward API volume",
			strings.Join(missing, ", "), tee.EnvNamespace, tee.EnvPod, tee.EnvPodUID, tee.EnvContainer)
		if podinfoErr != nil {
			err = fmt.Errorf("%w (podinfo: %w)", err, podinfoErr)
		}
		return nil, err
	}
	budget := f.budget
	if !f.budgetSet {
		budget = int64(f.maxBackups+1) * f.maxSize
	}
	opts, notes := logrotate.Options{MaxSize: f.maxSize, MaxBackups: f.maxBackups, Budget: budget}.Normalize()
	for _, n := range notes {
		log.Warn(n)
	}
	return tee.OpenContainerLog(f.logDir, id, opts)
}

func install(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		_, _ = fmt.Fprintln(stderr, "usage: fargate-otel-tee install DIR")
		return 2
	}
	path, err := tee.Install(args[0])
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "fargate-otel-tee: %v\n", err)
		return 1
	}
	_, _ = fmt.Fprintln(stdout, path)
	return 0
}

func usage(w io.Writer) {
	_, _ = fmt.Fprint(w, `usage:
  fargate-otel-tee [flags] -- CMD [ARGS...]   run CMD; pass its output through and write it to the log file
  CMD | fargate-otel-tee [flags]              the same for stdin (--stream says which stream it is)
  fargate-otel-tee install DIR                copy this executable into DIR
  fargate-otel-tee logrotate --dir DIR ...    rotate and prune log files an app writes itself (-h for flags)
  fargate-otel-tee follow --node-proxy URL ...  follow the pod's containers' logs from the kubelet into
                                              the same files (for containers that cannot be wrapped; -h for flags)

The log file is <log-dir>/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log, in
containerd's CRI format, rotated to <restart>.log.<YYYYMMDD-HHMMSS>.

flags:
  --log-dir DIR        root of the logs volume (env FARGATE_OTEL_LOG_DIR; default /fargate-otel/logs)
  --container NAME     container name (env FARGATE_OTEL_CONTAINER)
  --namespace NS       pod namespace (env FARGATE_OTEL_NAMESPACE, or podinfo file "namespace")
  --pod NAME           pod name (env FARGATE_OTEL_POD, or podinfo file "name")
  --pod-uid UID        pod UID (env FARGATE_OTEL_POD_UID, or podinfo file "uid")
  --podinfo-dir DIR    Downward API volume with the files namespace, name and uid
  --format cri|raw     file format (default cri)
  --max-size SIZE      rotate at this size (default 10Mi; sizes: 123, 64Ki, 10Mi, 1Gi)
  --max-backups N      rotated files kept (default 4)
  --budget SIZE        bytes for all of the container's log files, earlier restarts included
                       (default (max-backups+1) x max-size)
  --stream stdout|stderr  stdin mode: the stream stdin is (default stdout)
  --rate-limit-lines N          lines per second the file takes (env FARGATE_OTEL_RATE_LIMIT_LINES; default no limit)
  --rate-limit-lines-burst N    lines over the rate taken at once (env ..._LINES_BURST; default one second's worth)
  --rate-limit-bytes SIZE       bytes per second the file takes (env FARGATE_OTEL_RATE_LIMIT_BYTES; default no limit)
  --rate-limit-bytes-burst SIZE bytes over the rate taken at once (env ..._BYTES_BURST; default one second's worth)
                       Lines over the budget leave the file only, never the passthrough; the file
                       says how many, once the rate is back under the budget.
`)
}
