// Command fargate-otel-follow is the second log source of fargate-otel: a
// small native sidecar, for containers whose command cannot be wrapped, that
// follows the pod's own containers' logs from the kubelet through the node
// proxy and writes them as the wrapper writes them (see docs/wrapper.md).
// It ships next to fargate-otel-tee in the same image, and
// `fargate-otel-tee follow [flags]` runs it; it is a binary of its own
// because its TLS client would triple the size of the wrapper that is copied
// into every pod.
//
//	fargate-otel-follow --node-proxy URL --node N --namespace NS --pod P --pod-uid U --containers a,b [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/logrotate"
	"github.com/fargate-otel/fargate-otel/tee"
	"github.com/fargate-otel/fargate-otel/tee/follow"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

type flags struct {
	nodeProxy, tokenFile, caFile, node string
	id                                 tee.Identity
	containers, dir                    string
	maxSize                            int64
	maxBackups                         int
	budget                             int64
	budgetSet                          bool
	drain, retryMax, poll              time.Duration
}

func newFlagSet(f *flags, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("fargate-otel-follow", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&f.nodeProxy, "node-proxy", env(follow.EnvNodeProxy, ""), "")
	fs.StringVar(&f.tokenFile, "token-file", env(follow.EnvTokenFile, follow.DefaultTokenFile), "")
	fs.StringVar(&f.caFile, "ca-file", env(follow.EnvCAFile, follow.DefaultCAFile), "")
	fs.StringVar(&f.node, "node", env(follow.EnvNode, ""), "")
	fs.StringVar(&f.id.Namespace, "namespace", env(tee.EnvNamespace, ""), "")
	fs.StringVar(&f.id.Pod, "pod", env(tee.EnvPod, ""), "")
	fs.StringVar(&f.id.PodUID, "pod-uid", env(tee.EnvPodUID, ""), "")
	fs.StringVar(&f.containers, "containers", env(follow.EnvContainers, ""), "")
	fs.StringVar(&f.dir, "dir", env(tee.EnvLogDir, follow.DefaultDir), "")
	f.maxSize = logrotate.DefaultMaxSize
	fs.Func("max-size", "", func(s string) (err error) {
		f.maxSize, err = logrotate.ParseSize(s)
		if err == nil && f.maxSize == 0 {
			err = errors.New("max size must be above 0")
		}
		return err
	})
	fs.IntVar(&f.maxBackups, "max-backups", logrotate.DefaultMaxBackups, "")
	fs.Func("budget", "", func(s string) (err error) {
		f.budget, err = logrotate.ParseSize(s)
		f.budgetSet = true
		return err
	})
	f.drain, f.retryMax, f.poll = 5*time.Second, 30*time.Second, 30*time.Second
	fs.Func("drain-timeout", "", func(s string) (err error) { f.drain, err = time.ParseDuration(s); return err })
	fs.Func("retry-max", "", func(s string) (err error) { f.retryMax, err = time.ParseDuration(s); return err })
	fs.Func("poll-interval", "", func(s string) (err error) { f.poll, err = time.ParseDuration(s); return err })
	return fs
}

// durationsFromEnv reads the duration variables for the flags not given.
func durationsFromEnv(fs *flag.FlagSet, f *flags, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, d := range []struct {
		flag, env string
		dst       *time.Duration
	}{{"drain-timeout", follow.EnvDrainTimeout, &f.drain}, {"retry-max", follow.EnvRetryMax, &f.retryMax}} {
		if v := getenv(d.env); v != "" && !set[d.flag] {
			t, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q: %w (write a duration such as 5s)", d.env, v, err)
			}
			*d.dst = t
		}
	}
	return nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var f flags
	fs := newFlagSet(&f, getenv)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil {
		err = durationsFromEnv(fs, &f, getenv)
	}
	var cfg follow.Config
	if err == nil {
		cfg, err = config(f)
	}
	if err == nil {
		err = cfg.Check()
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "fargate-otel-tee follow: %v\n\n", err)
		usage(stderr)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("logger", "fargate-otel-tee follow")
	cfg.Logger = log

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	term := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		close(term)
		<-sigs // a second signal: stop at once
		cancel()
	}()
	if err := follow.Run(ctx, term, cfg); err != nil {
		log.Error("cannot follow the containers' logs", "error", err)
		return 1
	}
	return 0
}

func config(f flags) (follow.Config, error) {
	var u *url.URL
	if f.nodeProxy != "" {
		var err error
		if u, err = url.Parse(f.nodeProxy); err != nil {
			return follow.Config{}, fmt.Errorf("--node-proxy %q: %w", f.nodeProxy, err)
		}
	}
	if f.maxBackups < 0 {
		return follow.Config{}, fmt.Errorf("--max-backups %d: use 0 or more", f.maxBackups)
	}
	budget := f.budget
	if !f.budgetSet {
		budget = int64(f.maxBackups+1) * f.maxSize
	}
	opts, _ := logrotate.Options{MaxSize: f.maxSize, MaxBackups: f.maxBackups, Budget: budget}.Normalize()
	var containers []string
	for _, c := range strings.Split(f.containers, ",") {
		if c = strings.TrimSpace(c); c != "" {
			containers = append(containers, c)
		}
	}
	return follow.Config{
		NodeProxy: u, TokenFile: f.tokenFile, CAFile: f.caFile, Node: f.node, Pod: f.id,
		Containers: containers, Dir: f.dir, Rotate: opts, DrainTimeout: f.drain, RetryMax: f.retryMax, PollInterval: f.poll,
	}, nil
}

func usage(w io.Writer) {
	_, _ = fmt.Fprint(w, `usage: fargate-otel-tee follow [flags]

Follows the logs of the pod's own containers from the kubelet, through the node proxy,
and writes them as fargate-otel-tee writes a wrapped container's log:
<dir>/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log, CRI format, rotated.
Every line is written as stdout: the kubelet's containerLogs merges the two streams.

flags (environment variables in parentheses; the injector sets them):
  --node-proxy URL     the node proxy, https://... (FARGATE_OTEL_NODE_PROXY)
  --token-file PATH    projected service account token, re-read as it rotates (FARGATE_OTEL_TOKEN_FILE;
                       default /var/run/secrets/kubernetes.io/serviceaccount/token)
  --ca-file PATH       CA bundle of the node proxy (FARGATE_OTEL_CA_FILE;
                       default /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)
  --node NAME          the pod's node, spec.nodeName (FARGATE_OTEL_NODE)
  --namespace NS       (FARGATE_OTEL_NAMESPACE)
  --pod NAME           (FARGATE_OTEL_POD)
  --pod-uid UID        (FARGATE_OTEL_POD_UID)
  --containers a,b     the containers to follow (FARGATE_OTEL_CONTAINERS)
  --dir DIR            root of the logs volume (FARGATE_OTEL_LOG_DIR; default /var/log/pods)
  --max-size SIZE      rotate at this size (default 10Mi)
  --max-backups N      rotated files kept per restart (default 4)
  --budget SIZE        bytes for all of a container's files (default (max-backups+1) x max-size)
  --drain-timeout D    on SIGTERM, read the stopped containers' logs to their end for at most D
                       (FARGATE_OTEL_DRAIN_TIMEOUT; default 5s)
  --retry-max D        longest wait between attempts; a refusal (401, 403, 429) waits this long
                       (FARGATE_OTEL_RETRY_MAX; default 30s)
  --poll-interval D    how often the pod's status is read while a stream is open, to notice a
                       restart that a hung stream hides (default 30s)
`)
}
