package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
)

// startForwarder starts `localcluster _forward` detached on the host and
// waits for the address it listens on.
func startForwarder(dir, self string) (net.Addr, error) {
	addrFile := filepath.Join(dir, "forward.addr")
	_ = os.Remove(addrFile)
	logFile, err := os.OpenFile(filepath.Join(dir, "forward.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(self, "-dir", dir, "_forward", addrFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the API server forwarder: %w", err)
	}
	if err := cluster.WritePIDFile(dir, "forward", cmd.Process.Pid, self); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(addrFile); err == nil && strings.HasSuffix(string(data), "\n") {
			return net.ResolveTCPAddr("tcp", strings.TrimSpace(string(data)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("the API server forwarder did not start: see %s", logFile.Name())
}

// runForwarder listens on a free port of the host's loopback and relays each
// connection to the API server inside the cluster's namespace. Nothing else
// is reachable through it.
func runForwarder(dir string, args []string) error {
	if len(args) != 1 {
		return errors.New("_forward ADDR_FILE")
	}
	dial, err := netnsDialer(netnsPath())
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := os.WriteFile(args[0], []byte(l.Addr().String()+"\n"), 0o644); err != nil {
		return err
	}
	target := net.JoinHostPort(cluster.NodeIP, "6443")
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer func() { _ = conn.Close() }()
			upstream, err := dial(target)
			if err != nil {
				fmt.Fprintln(os.Stderr, "dial", target, err)
				return
			}
			defer func() { _ = upstream.Close() }()
			done := make(chan struct{}, 2)
			relay := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go relay(upstream, conn)
			go relay(conn, upstream)
			<-done
			<-done
		}()
	}
}

// netnsDialer returns a dial function whose sockets are created in the
// network namespace at path: one OS thread enters the namespace for good and
// creates every socket; a socket stays in the namespace it was created in.
func netnsDialer(path string) (func(addr string) (net.Conn, error), error) {
	type result struct {
		conn net.Conn
		err  error
	}
	type request struct {
		addr  string
		reply chan result
	}
	requests := make(chan request)
	ready := make(chan error)
	go func() {
		// Never unlocked: the thread must not return to the pool while in
		// another namespace.
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ready <- fmt.Errorf("open %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			ready <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ready <- nil
		for r := range requests {
			c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
			r.reply <- result{c, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return func(addr string) (net.Conn, error) {
		r := request{addr: addr, reply: make(chan result, 1)}
		requests <- r
		res := <-r.reply
		return res.conn, res.err
	}, nil
}
