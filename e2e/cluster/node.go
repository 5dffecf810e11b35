package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of the single node.
const (
	DefaultNodeName = "e2e-node"
	// PodCIDR is the range of the CNI bridge (cni0, 10.244.0.1).
	PodCIDR = "10.244.0.0/24"
	// DNSServiceIP is the ClusterIP of kube-system/kube-dns.
	DNSServiceIP = "10.0.0.10"
	// ClusterDomain is the kubelet's --cluster-domain.
	ClusterDomain = "cluster.local"
)

// Cluster is a single-node Kubernetes in the caller's private network
// namespace: the control plane, containerd, the kubelet, the controller
// manager, the scheduler, kube-proxy (iptables mode) and CoreDNS.
type Cluster struct {
	*ControlPlane
	NodeName string
	// ContainerdSocket is the socket of the cluster's own containerd.
	ContainerdSocket string

	state      State
	processes  map[string]*process
	createdDir bool
	lock       *os.File
	opts       Options
	stopped    bool
	configs    nodeConfigFiles
}

// State is what a later process needs to stop a detached cluster; Start
// writes it to <Dir>/state.json.
type State struct {
	Dir              string `json:"dir"`
	NodeName         string `json:"nodeName"`
	CgroupRoot       string `json:"cgroupRoot"`
	CNINetwork       string `json:"cniNetwork"`
	ContainerdSocket string `json:"containerdSocket"`
	APIServerPort    int    `json:"apiServerPort"`
	// NetNS is the named network namespace (/run/netns/<NetNS>) of a
	// persistent cluster; empty for a test's anonymous one.
	NetNS string `json:"netns,omitempty"`
	// MasqueradeAll is kube-proxy's choice when bridge netfilter is missing.
	MasqueradeAll bool `json:"masqueradeAll,omitempty"`
	// Kubelet is the kubelet binary; teardown restores the kernel settings
	// it changed once no process runs it.
	Kubelet string `json:"kubelet"`
}

// Node components, in start order; Stop stops them in reverse.
var nodeComponents = []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// Start brings up a single-node cluster and waits until the node is Ready,
// the default service account exists, kube-proxy has synced, and CoreDNS
// answers. The caller must be in a private network namespace (RunInNetNS, or
// nsenter --net for a persistent cluster). On error, a non-nil Cluster is
// returned when there is something to stop: call Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts.defaults()
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	if err := bins.checkNodeBinaries(); err != nil {
		return nil, err
	}
	coredns, err := FindCoreDNS()
	if err != nil {
		return nil, err
	}
	if err := SetUpLoopback(); err != nil {
		return nil, err
	}
	createdDir := false
	var lock *os.File
	if opts.Dir == "" {
		if opts.Dir, lock, err = newRunDir(); err != nil {
			return nil, err
		}
		createdDir = true
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	id := shortID(dir)
	c := &Cluster{
		NodeName:         DefaultNodeName,
		ContainerdSocket: filepath.Join(dir, "containerd", "containerd.sock"),
		processes:        map[string]*process{},
		createdDir:       createdDir,
		lock:             lock,
		opts:             opts,
	}
	c.state = State{
		Dir:              dir,
		NodeName:         c.NodeName,
		CgroupRoot:       "/fargate-otel-e2e-" + id,
		CNINetwork:       "fargate-otel-e2e-" + id,
		ContainerdSocket: c.ContainerdSocket,
		APIServerPort:    opts.APIServerPort,
		Kubelet:          bins.Kubelet,
	}
	if err := WriteState(c.state); err != nil {
		return c, err
	}
	t0 := time.Now()
	bridgeNetfilter, err := setUpNodeNetwork(opts.ServiceCIDR, opts.Logf)
	if err != nil {
		return c, err
	}
	c.state.MasqueradeAll = !bridgeNetfilter
	if err := createCgroupRoot(c.state.CgroupRoot); err != nil {
		return c, err
	}
	if c.configs, err = writeNodeConfigs(c.state); err != nil {
		return c, err
	}

	// containerd and the image imports run while the control plane starts.
	if err := c.startContainerd(bins, opts.Detach); err != nil {
		return c, err
	}
	imported := make(chan error, 1)
	go func() { imported <- c.importBootImages(ctx, coredns) }()

	cp, err := StartControlPlane(ctx, opts)
	c.ControlPlane = cp
	if err != nil {
		return c, errors.Join(err, <-imported)
	}
	cp.createdDir = false // the cluster owns the directory
	if err := saveHostSysctls(); err != nil {
		return c, errors.Join(fmt.Errorf("record the kernel settings the kubelet changes: %w", err), <-imported)
	}
	if err := c.startNodeComponents(bins); err != nil {
		return c, errors.Join(err, <-imported)
	}
	if err := <-imported; err != nil {
		return c, err
	}
	opts.Logf("containerd ready, images imported, node components started after %v", time.Since(t0).Round(time.Millisecond))
	if err := c.deployDNS(ctx); err != nil {
		return c, err
	}
	if err := c.waitReady(ctx, t0); err != nil {
		return c, err
	}
	opts.Logf("cluster ready after %v", time.Since(t0).Round(time.Millisecond))
	return c, nil
}

func shortID(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:])[:10]
}

// WriteState writes s to <s.Dir>/state.json.
func WriteState(s State) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "state.json"), data, 0o644)
}

// ReadState reads the state a detached cluster left in dir.
func ReadState(dir string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s/state.json: %w", dir, err)
	}
	return s, nil
}

// setUpNodeNetwork prepares the namespace for pods and Services: forwarding,
// bridge netfilter (so that traffic between two pods on the bridge passes
// kube-proxy's NAT rules both ways), and a route for the Service range so
// that hostNetwork processes can connect to ClusterIPs (kube-proxy rewrites
// the destination). All of it is per network namespace. Without the
// br_netfilter module it reports false, and kube-proxy then masquerades all
// Service traffic instead, so that replies come back through the node.
func setUpNodeNetwork(serviceCIDR string, logf func(string, ...any)) (bridgeNetfilter bool, err error) {
	if err := RequirePrivateNetNS(); err != nil {
		return false, err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return false, fmt.Errorf("sysctl net.ipv4.ip_forward=1: %w", err)
	}
	const brKey = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if _, err := os.Stat(brKey); err != nil {
		_ = exec.Command("modprobe", "br_netfilter").Run()
	}
	if err := os.WriteFile(brKey, []byte("1"), 0o644); err != nil {
		logf("no bridge netfilter (%v): kube-proxy will masquerade all Service traffic", err)
	} else {
		bridgeNetfilter = true
	}
	if out, err := exec.Command("ip", "route", "replace", serviceCIDR, "dev", "lo", "src", NodeIP).CombinedOutput(); err != nil {
		return false, fmt.Errorf("ip route replace %s dev lo src %s: %w: %s", serviceCIDR, NodeIP, err, out)
	}
	return bridgeNetfilter, nil
}

func (c *Cluster) startNodeComponents(bins Binaries) error {
	dir, cp := c.state.Dir, c.ControlPlane
	pkiDir := filepath.Join(dir, "pki")
	type client struct {
		name string
		spec CertSpec
	}
	for _, cl := range []client{
		{"kube-controller-manager", CertSpec{CommonName: "system:kube-controller-manager", Client: true}},
		{"kube-scheduler", CertSpec{CommonName: "system:kube-scheduler", Client: true}},
		{"kubelet", CertSpec{CommonName: "system:node:" + c.NodeName, Organizations: []string{"system:nodes"}, Client: true}},
		{"kube-proxy", CertSpec{CommonName: "system:kube-proxy", Client: true}},
	} {
		kp, err := issueFiles(cp.CA, pkiDir, cl.name+"-client", cl.spec)
		if err != nil {
			return err
		}
		if err := writeKubeconfig(filepath.Join(dir, cl.name+".kubeconfig"), cp.URL, cp.CA, kp); err != nil {
			return err
		}
	}
	if _, err := issueFiles(cp.CA, pkiDir, "kubelet-serving", CertSpec{CommonName: c.NodeName, Hosts: []string{NodeIP, c.NodeName}, Server: true}); err != nil {
		return err
	}
	files := c.configs
	kc := func(name string) string { return filepath.Join(dir, name+".kubeconfig") }
	p := func(name string) string { return filepath.Join(pkiDir, name) }
	args := map[string][]string{
		"kube-controller-manager": {
			"--kubeconfig=" + kc("kube-controller-manager"),
			"--authentication-kubeconfig=" + kc("kube-controller-manager"),
			"--authorization-kubeconfig=" + kc("kube-controller-manager"),
			"--bind-address=127.0.0.1",
			"--root-ca-file=" + p("ca.crt"),
			"--service-account-private-key-file=" + p("sa.key"),
			"--use-service-account-credentials=true",
			"--cluster-signing-cert-file=" + p("ca.crt"),
			"--cluster-signing-key-file=" + p("ca.key"),
			"--service-cluster-ip-range=" + cp.opts.ServiceCIDR,
			"--leader-elect=false",
			"--profiling=false",
			"--v=1",
		},
		"kube-scheduler": {
			"--kubeconfig=" + kc("kube-scheduler"),
			"--authentication-kubeconfig=" + kc("kube-scheduler"),
			"--authorization-kubeconfig=" + kc("kube-scheduler"),
			"--bind-address=127.0.0.1",
			"--leader-elect=false",
			"--profiling=false",
			"--v=1",
		},
		"kubelet": {
			"--config=" + files.kubelet,
			"--kubeconfig=" + kc("kubelet"),
			"--hostname-override=" + c.NodeName,
			"--node-ip=" + NodeIP,
			"--root-dir=" + filepath.Join(dir, "kubelet"),
			// The kubelet's cAdvisor finds containerd here, not at
			// /run/containerd: without it, pod network stats are missing
			// from /stats/summary. Deprecated, still honoured.
			"--containerd=" + c.ContainerdSocket,
			"--v=1",
		},
		"kube-proxy": {
			"--config=" + files.kubeProxy,
			"--v=1",
		},
	}
	bin := map[string]string{
		"kube-controller-manager": bins.KubeControllerManager,
		"kube-scheduler":          bins.KubeScheduler,
		"kubelet":                 bins.Kubelet,
		"kube-proxy":              bins.KubeProxy,
	}
	for _, name := range nodeComponents {
		proc, err := startProcess(dir, name, bin[name], args[name], cp.opts.Detach)
		if err != nil {
			return err
		}
		c.processes[name] = proc
	}
	return nil
}

// waitReady waits for what a test needs before it creates pods.
func (c *Cluster) waitReady(ctx context.Context, t0 time.Time) error {
	logf := c.opts.Logf
	waitFor := c.waitFor
	if err := waitFor(ctx, c.processes["kubelet"], "node "+c.NodeName+" Ready", func(ctx context.Context) error {
		node, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node Ready=%s: %s", cond.Status, cond.Message)
			}
		}
		return errors.New("node has no Ready condition yet")
	}); err != nil {
		return err
	}
	logf("node Ready after %v", time.Since(t0).Round(time.Millisecond))
	if err := waitFor(ctx, c.processes["kube-controller-manager"], "service account default/default", func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, c.processes["kube-proxy"], "kube-proxy synced", func(ctx context.Context) error {
		return httpGetOK(ctx, http.DefaultClient, "http://127.0.0.1:10256/healthz", "")
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, nil, "CoreDNS ready", func(ctx context.Context) error {
		return DeploymentAvailable(ctx, c.Client, "kube-system", "coredns")
	}); err != nil {
		return c.withPodDiagnostics(ctx, "kube-system", err)
	}
	logf("CoreDNS ready after %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// withPodDiagnostics adds the state of the namespace's pods to err: a
// timeout alone says nothing about an image that failed to start.
func (c *Cluster) withPodDiagnostics(ctx context.Context, ns string, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pods, lerr := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if lerr != nil {
		return err
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "\npod %s/%s: phase %s", ns, p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Waiting != nil:
				fmt.Fprintf(&b, "; %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			case cs.State.Terminated != nil:
				fmt.Fprintf(&b, "; %s terminated: %s (exit %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
			default:
				fmt.Fprintf(&b, "; %s running, ready=%v", cs.Name, cs.Ready)
			}
		}
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// Stop tears the cluster down: the node components, every pod's processes,
// containerd and its shims, the control plane, the mounts under Dir (pod
// volumes, root filesystems, pod network namespaces) and the cluster's
// cgroups; then it removes Dir if Start created it (unless KeepDir). It is
// safe to call more than once, and after a failed Start.
func (c *Cluster) Stop() error {
	if c == nil || c.stopped {
		return nil
	}
	c.stopped = true
	procs := map[string]*process{}
	for k, v := range c.processes {
		procs[k] = v
	}
	if cp := c.ControlPlane; cp != nil {
		cp.stopped = true
		procs["kube-apiserver"], procs["etcd"] = cp.apiserver, cp.etcd
	}
	err := teardown(c.state, procs)
	if c.createdDir && !c.opts.KeepDir && err == nil {
		err = os.RemoveAll(c.state.Dir)
	}
	if c.createdDir && c.opts.KeepDir && err == nil {
		// Stopped cleanly and kept for inspection: not a sweeper's job.
		_ = os.Remove(filepath.Join(c.state.Dir, ownerLock))
	}
	// A directory left behind after an error is swept by a later Start
	// once this process is gone.
	release(c.lock)
	return err
}

// StopDetached stops a cluster that an earlier process started with
// Options.Detach, from the state it left in dir.
func StopDetached(dir string) error {
	s, err := ReadState(dir)
	if err != nil {
		return fmt.Errorf("no cluster state in %s: %w", dir, err)
	}
	return teardown(s, nil)
}

// teardown stops everything in order. procs holds the handles of the
// processes this process started; the others are found by PID file.
func teardown(s State, procs map[string]*process) error {
	stop := func(name string, grace time.Duration) {
		if p := procs[name]; p != nil {
			p.stop(grace)
			return
		}
		_ = stopByPIDFile(s.Dir, name, grace)
	}
	var errs []error
	// Controllers first, so that nothing recreates pods; then the kubelet,
	// so that nothing restarts the containers killed next.
	for _, name := range []string{"kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"} {
		stop(name, 10*time.Second)
	}
	if s.CgroupRoot != "" {
		if err := killCgroupProcesses(s.CgroupRoot, 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	stop("containerd", 10*time.Second)
	if s.ContainerdSocket != "" {
		killShims(s.ContainerdSocket)
	}
	stop("kube-apiserver", 15*time.Second)
	stop("etcd", 10*time.Second)
	if err := unmountUnder(s.Dir); err != nil {
		errs = append(errs, err)
	}
	if s.CgroupRoot != "" {
		if err := removeCgroupRoot(s.CgroupRoot); err != nil {
			errs = append(errs, err)
		}
	}
	if s.CNINetwork != "" {
		removeCNICache(s)
	}
	if s.Kubelet != "" {
		if err := restoreHostSysctls(s.Kubelet); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkNodeBinaries says which Debian package to install when a binary the
// single node needs is missing.
func (b Binaries) checkNodeBinaries() error {
	var missing []string
	for path, pkg := range map[string]string{
		b.Containerd:                         "containerd",
		b.Ctr:                                "containerd",
		filepath.Join(b.CNIBinDir, "bridge"): "containernetworking-plugins",
		b.Runc:                               "runc",
		"/usr/sbin/iptables":                 "iptables",
	} {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt package %s)", path, pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run `make k8s-bins`, which installs them", strings.Join(missing, ", "))
	}
	return nil
}

// Kubectl runs the pinned kubectl as admin against the cluster and returns
// its standard output (standard error is in the error).
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Binaries.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// State is what a later process needs to find and stop this cluster.
func (c *Cluster) State() State { return c.state }
