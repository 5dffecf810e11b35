// Command localcluster keeps the e2e single-node Kubernetes running for
// people (`make demo`): the cluster lives in the network namespace
// /run/netns/fargate-otel-local and stays up after the command returns; a
// small forwarder makes its API server reachable on the host's loopback, so
// that kubectl and helm work from the host with the kubeconfig it writes.
//
//	localcluster up                   start (or report the running cluster)
//	localcluster kubectl ARGS...      the pinned kubectl, as admin
//	localcluster import IMAGE.tar...  import docker-archive images into its containerd
//	localcluster env                  print `export KUBECONFIG=...`
//	localcluster down                 stop everything and remove the namespace
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

const netnsName = "fargate-otel-local"

func main() {
	fs := flag.NewFlagSet("localcluster", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (default <repo>/.cache/localcluster)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: localcluster [-dir DIR] up|down|status|env|kubectl ARGS|import FILE...")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() == 0 {
		fs.Usage()
		os.Exit(2)
	}
	if *dir == "" {
		root, err := gobuild.RepoRoot()
		if err != nil {
			fatal(fmt.Errorf("%w (or give -dir)", err))
		}
		*dir = filepath.Join(root, ".cache", "localcluster")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatal(err)
	}
	rememberBinaries(abs)
	cmd, args := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "up":
		err = up(abs)
	case "down":
		err = down(abs)
	case "status":
		err = status(abs)
	case "env":
		fmt.Printf("export KUBECONFIG=%s\n", hostKubeconfig(abs))
	case "kubectl":
		err = kubectl(abs, args)
	case "import":
		err = importImages(abs, args)
	case "_start": // inside the namespace
		err = startInside(abs)
	case "_forward": // on the host
		err = runForwarder(abs, args)
	default:
		fs.Usage()
		os.Exit(2)
	}
	if err != nil {
		fatal(err)
	}
}

// rememberBinaries keeps the binaries' locations that `up` found (from the
// Makefile, or by running make) for later commands, which then need neither.
func rememberBinaries(dir string) {
	file := filepath.Join(dir, "binaries.env")
	if os.Getenv("E2E_K8S_BIN_DIR") == "" {
		if data, err := os.ReadFile(file); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && os.Getenv(k) == "" {
					_ = os.Setenv(k, v)
				}
			}
		}
	}
}

func saveBinaries(dir string) error {
	bins, err := cluster.FindBinaries()
	if err != nil {
		return err
	}
	coredns, err := cluster.FindCoreDNS()
	if err != nil {
		return err
	}
	env := fmt.Sprintf("E2E_K8S_BIN_DIR=%s\nE2E_COREDNS=%s\nE2E_ETCD=%s\n", filepath.Dir(bins.Kubectl), coredns, bins.Etcd)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "binaries.env"), []byte(env), 0o644)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "localcluster:", err)
	os.Exit(1)
}

func clusterDir(dir string) string     { return filepath.Join(dir, "cluster") }
func hostKubeconfig(dir string) string { return filepath.Join(dir, "kubeconfig") }
func netnsPath() string                { return "/run/netns/" + netnsName }

func up(dir string) error {
	if err := status(dir); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(clusterDir(dir), "state.json")); err == nil {
		fmt.Println("a previous cluster did not answer: removing it first")
		if err := down(dir); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("the local cluster needs root (network namespace, containerd, kubelet)")
	}
	// Found (or built) once here; the process in the namespace and later
	// commands read them from binaries.env.
	if err := saveBinaries(dir); err != nil {
		return err
	}
	rememberBinaries(dir)
	t0 := time.Now()
	if _, err := os.Stat(netnsPath()); err != nil {
		if out, err := exec.Command("ip", "netns", "add", netnsName).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add %s: %w: %s", netnsName, err, out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// nsenter --net only: the kubelet and containerd must share the host's
	// mount namespace (`ip netns exec` would give them a new one).
	start := exec.Command("nsenter", "--net="+netnsPath(), "--", self, "-dir", dir, "_start")
	start.Stdout, start.Stderr = os.Stdout, os.Stderr
	if err := start.Run(); err != nil {
		_ = down(dir)
		return fmt.Errorf("start the cluster in %s: %w (logs: %s)", netnsPath(), err, filepath.Join(clusterDir(dir), "logs"))
	}
	addr, err := startForwarder(dir, self)
	if err != nil {
		return err
	}
	if err := writeHostFiles(dir, addr); err != nil {
		return err
	}
	fmt.Printf("cluster up in %v; the API server is forwarded to https://%s\n", time.Since(t0).Round(100*time.Millisecond), addr)
	printUsage(dir)
	return nil
}

func printUsage(dir string) {
	fmt.Printf("  export KUBECONFIG=%s\n  %s get pods -A\n  stop it with: make demo-down (or localcluster down)\n",
		hostKubeconfig(dir), filepath.Join(dir, "kubectl"))
}

// startInside runs in the cluster's namespace and leaves the components
// running (Detach) when it returns.
func startInside(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: clusterDir(dir), KeepDir: true, Detach: true,
		Logf: func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) },
	})
	if err != nil {
		if c != nil {
			_ = c.Stop()
		}
		return err
	}
	st := c.State()
	st.NetNS = netnsName
	return cluster.WriteState(st)
}

func status(dir string) error {
	kc := hostKubeconfig(dir)
	if _, err := os.Stat(kc); err != nil {
		return errors.New("no local cluster")
	}
	bins, err := cluster.FindBinaries()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.Kubectl, "--kubeconfig", kc, "get", "nodes", "--no-headers").CombinedOutput()
	if err != nil {
		return fmt.Errorf("the local cluster does not answer: %w: %s", err, strings.TrimSpace(string(out)))
	}
	fmt.Printf("local cluster running: %s\n", strings.Join(strings.Fields(string(out)), " "))
	printUsage(dir)
	return nil
}

func down(dir string) error {
	var errs []error
	if err := cluster.StopPIDFile(dir, "forward"); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat(filepath.Join(clusterDir(dir), "state.json")); err == nil {
		if err := cluster.StopDetached(clusterDir(dir)); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(netnsPath()); err == nil {
		if out, err := exec.Command("ip", "netns", "delete", netnsName).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %w: %s", netnsName, err, out))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w (state kept in %s)", err, dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fmt.Println("local cluster removed")
	return nil
}

func kubectl(dir string, args []string) error {
	bins, err := cluster.FindBinaries()
	if err != nil {
		return err
	}
	argv := append([]string{bins.Kubectl, "--kubeconfig", hostKubeconfig(dir)}, args...)
	return syscall.Exec(bins.Kubectl, argv, os.Environ())
}

func importImages(dir string, files []string) error {
	st, err := cluster.ReadState(clusterDir(dir))
	if err != nil {
		return fmt.Errorf("no local cluster: %w", err)
	}
	for _, f := range files {
		out, err := exec.Command("ctr", "--address", st.ContainerdSocket, "--namespace", "k8s.io", "images", "import", f).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import %s: %w: %s", f, err, out)
		}
		fmt.Print(string(out))
	}
	return nil
}

// writeHostFiles writes a kubeconfig for the forwarded address and a
// kubectl wrapper next to it.
func writeHostFiles(dir string, addr net.Addr) error {
	data, err := os.ReadFile(filepath.Join(clusterDir(dir), "admin.kubeconfig"))
	if err != nil {
		return err
	}
	inside := fmt.Sprintf("https://%s:6443", cluster.NodeIP)
	if !strings.Contains(string(data), inside) {
		return fmt.Errorf("admin.kubeconfig does not name %s", inside)
	}
	// The API server's certificate names 127.0.0.1.
	kc := strings.Replace(string(data), inside, "https://"+addr.String(), 1)
	if err := os.WriteFile(hostKubeconfig(dir), []byte(kc), 0o600); err != nil {
		return err
	}
	bins, err := cluster.FindBinaries()
	if err != nil {
		return err
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec %s --kubeconfig %s \"$@\"\n", bins.Kubectl, hostKubeconfig(dir))
	return os.WriteFile(filepath.Join(dir, "kubectl"), []byte(wrapper), 0o755)
}
