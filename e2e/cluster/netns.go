package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

// NodeIP is the address of the node inside the cluster's network namespace:
// a /32 on lo. It is not a loopback address, because the API server refuses
// to proxy to loopback addresses (nodes/proxy) and the kubelet refuses a
// loopback node IP; nothing outside the namespace can reach it.
const NodeIP = "10.200.0.1"

// netnsEnv marks a process that RunInNetNS has already moved into a private
// network namespace.
const netnsEnv = "FARGATE_OTEL_E2E_NETNS"

// Runner is what RunInNetNS runs: *testing.M in a TestMain.
type Runner interface{ Run() int }

// RunInNetNS runs m in a new network namespace that holds only lo, with
// 127.0.0.1 and NodeIP. Use it in TestMain of any package that starts a
// cluster:
//
//	func TestMain(m *testing.M) { os.Exit(cluster.RunInNetNS(m)) }
//
// The test binary re-executes itself with CLONE_NEWNET (it needs root, as CI
// has); the first process only waits and forwards signals. Every process the
// tests start inherits the namespace, so every port is private, and the
// namespace disappears with its last process.
func RunInNetNS(m Runner) int {
	if os.Getenv(netnsEnv) == "" {
		code, err := reexecInNewNetNS()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e/cluster: %v\n", err)
			return 1
		}
		return code
	}
	if err := SetUpLoopback(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e/cluster: set up the network namespace: %v\n", err)
		return 1
	}
	return m.Run()
}

func reexecInNewNetNS() (int, error) {
	if os.Geteuid() != 0 {
		return 0, errors.New("the cluster tests create a network namespace and need root: run them as root (CI does), e.g. `sudo -E go test ...`")
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("re-execute the test binary in a new network namespace: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// SetUpLoopback brings lo up and adds NodeIP/32 to it, in the current network
// namespace, which must be a private one. It is idempotent.
func SetUpLoopback() error {
	if err := RequirePrivateNetNS(); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %w: %s", err, out)
	}
	out, err := exec.Command("ip", "-4", "addr", "show", "dev", "lo").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip addr show dev lo: %w: %s", err, out)
	}
	if !strings.Contains(string(out), " "+NodeIP+"/32 ") {
		if out, err := exec.Command("ip", "addr", "add", NodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
			return fmt.Errorf("ip addr add %s/32 dev lo: %w: %s", NodeIP, err, out)
		}
	}
	return nil
}

// RequirePrivateNetNS fails unless the calling process runs in a network
// namespace of our own: one whose only addresses are loopback, NodeIP and
// the pod bridge's. The components bind 0.0.0.0 and the harness changes
// sysctls and iptables: both are only safe in such a namespace. (Comparing
// with PID 1's namespace is not possible: root here may not read it.)
func RequirePrivateNetNS() error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list network interfaces: %w", err)
	}
	_, pods, _ := net.ParseCIDR(PodCIDR)
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			return fmt.Errorf("addresses of %s: %w", iface.Name, err)
		}
		for _, a := range addrs {
			ipNet, ok := a.(*net.IPNet)
			if !ok || ipNet.IP.IsLoopback() || ipNet.IP.IsLinkLocalUnicast() || ipNet.IP.String() == NodeIP || pods.Contains(ipNet.IP) {
				continue
			}
			return fmt.Errorf("refusing to run a cluster in a network namespace with a way out (%s has %s): "+
				"call cluster.RunInNetNS from TestMain, or run the process under `nsenter --net=/run/netns/NAME`", iface.Name, a)
		}
	}
	return nil
}
