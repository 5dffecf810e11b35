package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one component (etcd, kube-apiserver, ...) with its output in
// <dir>/logs/<name>.log.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	// detached processes outlive the caller (persistent mode); others die
	// with it (Pdeathsig), so a killed test leaves nothing running.
	detached bool
}

func startProcess(dir, name, bin string, args []string, detached bool) (*process, error) {
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	_, _ = fmt.Fprintf(logFile, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	// A process group of its own: stop() signals the component and any
	// helper it forked, never the caller.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{}), detached: detached}
	if err := writePIDFile(dir, name, cmd.Process.Pid, bin); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return true, fmt.Errorf("%s exited", p.name)
		}
		return true, fmt.Errorf("%s exited: %w", p.name, p.waitErr)
	default:
		return false, nil
	}
}

// failure decorates err with the end of the component's log, which almost
// always says what went wrong.
func (p *process) failure(err error) error {
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, p.logPath, tail(p.logPath, 25))
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs.
func (p *process) stop(grace time.Duration) {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
	_ = os.Remove(pidFilePath(filepath.Dir(filepath.Dir(p.logPath)), p.name))
}

func pidFilePath(dir, name string) string { return filepath.Join(dir, "run", name+".pid") }

// writePIDFile records "<pid> <binary>" so that `localcluster down`, in
// another process, stops exactly what `up` started and nothing else.
func writePIDFile(dir, name string, pid int, bin string) error {
	path := pidFilePath(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if resolved, err := filepath.EvalSymlinks(bin); err == nil {
		bin = resolved
	}
	return os.WriteFile(path, fmt.Appendf(nil, "%d %s\n", pid, bin), 0o644)
}

// WritePIDFile records a process started outside this package (the
// localcluster forwarder) so that StopPIDFile can stop it later.
func WritePIDFile(dir, name string, pid int, bin string) error {
	return writePIDFile(dir, name, pid, bin)
}

// StopPIDFile stops a process recorded with WritePIDFile (SIGTERM, then
// SIGKILL after 5 s), if it still runs the recorded binary.
func StopPIDFile(dir, name string) error { return stopByPIDFile(dir, name, 5*time.Second) }

// stopByPIDFile stops a process recorded by writePIDFile, after checking
// that the PID still runs the recorded binary (PIDs are reused).
func stopByPIDFile(dir, name string, grace time.Duration) error {
	path := pidFilePath(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return fmt.Errorf("%s: want \"<pid> <binary>\", got %q", path, data)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if runs(pid, fields[1]) {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for runs(pid, fields[1]) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if runs(pid, fields[1]) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return os.Remove(path)
}

// runs reports whether pid is alive (not a zombie) and executes bin.
func runs(pid int, bin string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return false
		}
	}
	return strings.TrimSuffix(exe, " (deleted)") == bin
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
