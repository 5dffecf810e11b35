package tee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// fSetPipeSize is F_SETPIPE_SZ, which syscall does not name.
const fSetPipeSize = 1031

// pipeSize is the capacity asked for the command's pipes (the default
// maximum for unprivileged processes, /proc/sys/fs/pipe-max-size): room for
// the command to go on writing while we are busy.
const pipeSize = 1 << 20

// ForwardedSignals are passed on to the command.
var ForwardedSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// Config is one run of the wrapper.
type Config struct {
	// Command and its arguments. Empty: copy stdin instead (the shell
	// pipeline case, app | fargate-otel-tee).
	Command []string
	// StdinStream is the stream that stdin is, when Command is empty.
	StdinStream Stream
	Format      Format
	// Log receives the framed lines; nil passes through only.
	Log io.Writer
	// RateLimit is the budget of the file (none when zero): lines over it
	// leave the file only, and the file says how many.
	RateLimit RateLimit

	Stdin, Stdout, Stderr *os.File // os.Stdin, os.Stdout, os.Stderr when nil
	Env                   []string // os.Environ() when nil
	Logger                *slog.Logger

	// After the command exits, its streams are read until they end, or
	// until nothing came for DrainIdle (a background process may hold them
	// open), at most DrainMax.
	DrainIdle, DrainMax time.Duration
	// CloseTimeout bounds the wait for the last lines to reach the file.
	CloseTimeout time.Duration
	// Queue between the reader and the file writer.
	BlockSize, QueueBlocks int
	Now                    func() time.Time
}

func (c *Config) defaults() {
	if c.Stdin == nil {
		c.Stdin = os.Stdin
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(c.Stderr, nil))
	}
	if c.DrainIdle <= 0 {
		c.DrainIdle = 200 * time.Millisecond
	}
	if c.DrainMax <= 0 {
		c.DrainMax = 2 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 5 * time.Second
	}
}

// Run runs the command (or copies stdin) and returns the exit code the
// wrapper should exit with: the command's, or 128+signal when a signal
// killed it, 126 or 127 when it could not be started.
func Run(cfg Config) int {
	cfg.defaults()
	clk := newClock(cfg.Now)
	var sk *sink
	var rec recorder
	var lim *limited
	if cfg.Log != nil {
		sk = newSink(cfg.Format, cfg.Log, cfg.Logger, cfg.BlockSize, cfg.QueueBlocks)
		if cfg.Now != nil {
			sk.now = cfg.Now
		}
		rec = sk
		if cfg.RateLimit.Enabled() {
			lim = newLimited(sk, clk, cfg.RateLimit)
			rec = lim
		}
	}
	var code int
	if len(cfg.Command) == 0 {
		code = runStdin(cfg, sk, rec, clk)
	} else {
		code = runCommand(cfg, sk, rec, clk)
	}
	if lim != nil {
		lim.finish(clk.stamp())
	}
	if sk != nil {
		sk.close(cfg.CloseTimeout)
	}
	return code
}

// say tells the user something on stderr and in the file.
func say(cfg Config, sk *sink, clk *clock, level slog.Level, text string) {
	cfg.Logger.Log(context.Background(), level, text)
	if sk != nil {
		sk.say(clk.stamp(), text)
	}
}

func runCommand(cfg Config, sk *sink, rec recorder, clk *clock) int {
	path, err := lookPath(cfg.Command[0], envValue(cfg.Env, "PATH"))
	if err != nil {
		say(cfg, sk, clk, slog.LevelError, fmt.Sprintf("cannot run %q: %v", cfg.Command[0], err))
		if errors.Is(err, fs.ErrNotExist) {
			return 127
		}
		return 126
	}

	// Before the command starts, so that no signal is missed.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD, syscall.SIGPIPE}, ForwardedSignals...)...)
	defer signal.Stop(sigs)

	var wake [2]int
	if err := syscall.Pipe2(wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		say(cfg, sk, clk, slog.LevelError, fmt.Sprintf("cannot run %q: %v", cfg.Command[0], err))
		return 126
	}
	defer func() { _ = syscall.Close(wake[0]); _ = syscall.Close(wake[1]) }()

	st, err := setUpStreams(cfg)
	if err != nil {
		say(cfg, sk, clk, slog.LevelError, fmt.Sprintf("cannot run %q: %v", cfg.Command[0], err))
		return 126
	}
	defer st.close()
	if st.notice != "" {
		say(cfg, sk, clk, slog.LevelInfo, st.notice)
	}
	for _, s := range st.sources {
		s.split = newLineSplitter(s.stream, cfg.Format)
	}

	proc, err := os.StartProcess(path, cfg.Command, &os.ProcAttr{Env: cfg.Env, Files: st.childFiles, Sys: st.sys})
	st.closeChildSide()
	if err != nil {
		say(cfg, sk, clk, slog.LevelError, fmt.Sprintf("cannot run %q: %v", cfg.Command[0], err))
		if errors.Is(err, fs.ErrNotExist) {
			return 127
		}
		return 126
	}
	st.startInput()

	status := make(chan syscall.WaitStatus, 1)
	stop := make(chan struct{})
	defer close(stop)
	go supervise(sigs, stop, proc, status, wake[1], st.ptyMaster, int(cfg.Stdout.Fd()))

	p, err := newPump(st.sources, wake[0], sk, rec, clk)
	if err == nil {
		p.drainIdle, p.drainMax = cfg.DrainIdle, cfg.DrainMax
		err = p.run()
	}
	if err != nil {
		cfg.Logger.Error("cannot read the command's output", "error", err)
	}
	return exitCode(<-status)
}

// supervise reaps every child that exits (as PID 1 we inherit the command's
// orphans), reports the command's own exit, and forwards signals to it. It
// signals through the process handle (a pidfd), so that a signal can never
// reach an unrelated process that reused the pid.
func supervise(sigs <-chan os.Signal, stop <-chan struct{}, proc *os.Process, status chan<- syscall.WaitStatus, wake, ptyMaster, stdout int) {
	exited := false
	reap := func() {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				return
			}
			if pid == proc.Pid && !exited {
				exited = true
				status <- ws
				_, _ = syscall.Write(wake, []byte{1})
			}
		}
	}
	reap()
	for {
		select {
		case <-stop:
			return
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGCHLD:
				reap()
			case sig == syscall.SIGPIPE:
				// Our stdout or stderr closed: seen as EPIPE where we write.
			case sig == syscall.SIGWINCH && ptyMaster >= 0:
				// The kernel signals the command when its terminal's size changes.
				copyWindowSize(stdout, ptyMaster)
			case !exited:
				_ = proc.Signal(sig)
			}
		}
	}
}

func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}

// streams are the command's stdin, stdout and stderr and our ends of them.
type streams struct {
	childFiles []*os.File
	childSide  []*os.File // closed once the command has them
	sources    []*source
	sys        *syscall.SysProcAttr
	notice     string
	ptyMaster  int      // -1 without a terminal
	master     *os.File // owns ptyMaster
	input      func()   // starts copying our stdin to the terminal
	restore    func()
}

// setUpStreams gives the command pipes, or a pseudo-terminal when our stdout
// is a terminal (a tty: true container), so that the command still sees one.
func setUpStreams(cfg Config) (*streams, error) {
	st := &streams{ptyMaster: -1, restore: func() {}}
	stdoutFd := int(cfg.Stdout.Fd())
	if isTerminal(stdoutFd) {
		master, slave, err := openPTY()
		if err == nil {
			copyWindowSize(stdoutFd, master)
			st.ptyMaster = master
			st.master = os.NewFile(uintptr(master), "ptmx")
			st.childFiles = []*os.File{slave, slave, slave}
			st.childSide = []*os.File{slave}
			st.sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			st.sources = []*source{{fd: master, stream: Stdout, out: newPassthrough(cfg.Stdout), isPTY: true}}
			st.notice = "stdout is a terminal: the command runs on a pseudo-terminal, so its stdout and stderr are merged into one stream, logged as stdout"
			stdinFd := int(cfg.Stdin.Fd())
			st.input = func() {
				if isTerminal(stdinFd) {
					if restore, err := makeInputRaw(stdinFd); err == nil {
						st.restore = restore
					}
				}
				go func() { _, _ = io.Copy(st.master, cfg.Stdin) }()
			}
			return st, nil
		}
		st.notice = fmt.Sprintf("stdout is a terminal, but no pseudo-terminal could be opened (%v): the command runs on pipes and does not see a terminal; its stdout and stderr are merged on the terminal and logged as two streams", err)
	}
	var out, errp [2]int
	if err := syscall.Pipe2(out[:], syscall.O_CLOEXEC); err != nil {
		return nil, err
	}
	if err := syscall.Pipe2(errp[:], syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(out[0])
		_ = syscall.Close(out[1])
		return nil, err
	}
	for _, fd := range []int{out[0], errp[0]} {
		_ = syscall.SetNonblock(fd, true)
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), fSetPipeSize, pipeSize) // best effort
	}
	outW, errW := os.NewFile(uintptr(out[1]), "stdout"), os.NewFile(uintptr(errp[1]), "stderr")
	st.childFiles = []*os.File{cfg.Stdin, outW, errW}
	st.childSide = []*os.File{outW, errW}
	st.sources = []*source{
		{fd: out[0], stream: Stdout, out: newPassthrough(cfg.Stdout)},
		{fd: errp[0], stream: Stderr, out: newPassthrough(cfg.Stderr)},
	}
	return st, nil
}

func (st *streams) closeChildSide() {
	for _, f := range st.childSide {
		_ = f.Close()
	}
	st.childSide = nil
}

func (st *streams) startInput() {
	if st.input != nil {
		st.input()
	}
}

func (st *streams) close() {
	st.closeChildSide()
	st.restore()
	if st.master != nil {
		_ = st.master.Close()
	}
	for _, s := range st.sources {
		if !s.isPTY && !s.closed {
			_ = syscall.Close(s.fd)
			s.closed = true
		}
	}
}

// runStdin copies stdin through, the shell pipeline case. It ignores the
// signals that would stop it early, so that the writer of the pipe never gets
// a broken pipe because of us: it ends when stdin ends.
func runStdin(cfg Config, sk *sink, rec recorder, clk *clock) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	go func() {
		for range sigs {
		}
	}()
	out := cfg.Stdout
	if cfg.StdinStream == Stderr {
		out = cfg.Stderr
	}
	split := newLineSplitter(cfg.StdinStream, cfg.Format)
	buf := make([]byte, readSize)
	code := 0
	for {
		n, err := cfg.Stdin.Read(buf)
		if n > 0 {
			ts := clk.stamp()
			if out != nil {
				if _, werr := out.Write(buf[:n]); werr != nil {
					cfg.Logger.Warn("cannot pass the input through any more; still writing it to the log file", "error", werr)
					out = nil
				}
			}
			if sk != nil {
				split.feed(ts, buf[:n], rec)
				sk.flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			cfg.Logger.Error("cannot read stdin", "error", err)
			code = 1
			break
		}
	}
	if sk != nil {
		split.flush(clk.stamp(), rec)
		sk.flush()
	}
	return code
}

// lookPath finds a command like a shell does.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		return file, checkExecutable(file)
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no executable file of that name in the PATH (%s): %w", pathEnv, fs.ErrNotExist)
}

func checkExecutable(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a folder: %w", p, fs.ErrPermission)
	}
	if err := syscall.Access(p, 1 /* X_OK */); err != nil {
		return fmt.Errorf("%s is not executable: %w", p, fs.ErrPermission)
	}
	return nil
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
