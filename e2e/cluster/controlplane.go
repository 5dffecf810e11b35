package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure a control plane (and, for StartNode, the node).
// The zero value is a working configuration.
type Options struct {
	// Dir holds certificates, kubeconfigs, etcd data, logs. Empty: a new
	// temporary directory, removed by Stop unless KeepDir.
	Dir     string
	KeepDir bool
	// APIServerPort is the API server's secure port on every address of the
	// namespace (default 6443).
	APIServerPort int
	// ServiceCIDR is --service-cluster-ip-range (default 10.0.0.0/24; the
	// kubernetes Service gets its first address, 10.0.0.1).
	ServiceCIDR string
	// ExtraAPIServerArgs are appended to the API server's flags; a later
	// flag wins, so they can override the harness's choices.
	ExtraAPIServerArgs []string
	// Detach leaves the components running when the calling process ends
	// (persistent mode, used by e2e/cmd/localcluster). Stop still stops them.
	Detach bool
	// Logf reports progress (default: nothing).
	Logf func(format string, args ...any)
	// Timeout bounds each wait for a component to become ready (default 2m:
	// the machine is shared and may be compiling).
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.APIServerPort == 0 {
		o.APIServerPort = 6443
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.0.0.0/24"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
}

// ServiceAccountIssuer is the API server's --service-account-issuer, and the
// default audience of the tokens it issues (--api-audiences).
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// ControlPlane is etcd plus kube-apiserver, running in the caller's private
// network namespace.
type ControlPlane struct {
	// Dir is the working directory: pki/, kubeconfigs, logs/, etcd/.
	Dir string
	// CA signs everything; use it to sign webhook and proxy serving
	// certificates, and put CA.CertPEM in caBundles.
	CA *CA
	// URL is the API server's address, https://10.200.0.1:6443.
	URL string
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig with embedded
	// credentials, for kubectl and helm.
	Kubeconfig string
	// KubeletClient is the certificate the API server presents to kubelets
	// (CN kube-apiserver-kubelet-client, O system:masters): a fake kubelet
	// can check for it.
	KubeletClient *KeyPair
	// Binaries the cluster runs.
	Binaries Binaries

	opts       Options
	createdDir bool
	lock       *os.File
	etcd       *process
	apiserver  *process
	stopped    bool
}

// StartControlPlane starts etcd and kube-apiserver and waits until the API
// server is ready. The calling process must be in a private network namespace
// (see RunInNetNS). Stop it with Stop, also when this returns an error along
// with a non-nil ControlPlane.
func StartControlPlane(ctx context.Context, opts Options) (*ControlPlane, error) {
	opts.defaults()
	if err := SetUpLoopback(); err != nil {
		return nil, err
	}
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: opts.Dir, opts: opts, Binaries: bins}
	if cp.Dir == "" {
		if cp.Dir, cp.lock, err = newRunDir(); err != nil {
			return nil, err
		}
		cp.createdDir = true
	}
	if cp.Dir, err = filepath.Abs(cp.Dir); err != nil {
		return nil, err
	}
	cp.URL = fmt.Sprintf("https://%s:%d", NodeIP, opts.APIServerPort)
	if err := cp.start(ctx); err != nil {
		return cp, err
	}
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context) error {
	t0 := time.Now()
	pki, err := writePKI(cp.Dir, cp.opts.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	cp.CA, cp.KubeletClient = pki.ca, pki.kubeletClient
	cp.Config = restConfig(cp.URL, pki.ca, pki.admin)
	if cp.Client, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(cp.Kubeconfig, cp.URL, pki.ca, pki.admin); err != nil {
		return err
	}
	cp.opts.Logf("certificates ready in %v", time.Since(t0).Round(time.Millisecond))

	etcdClientPort, err := freePort()
	if err != nil {
		return err
	}
	etcdPeerPort, err := freePort()
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	cp.etcd, err = startProcess(cp.Dir, "etcd", cp.Binaries.Etcd, []string{
		"--name=default",
		"--data-dir=" + filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--log-level=warn",
	}, cp.opts.Detach)
	if err != nil {
		return err
	}
	if err := cp.waitFor(ctx, cp.etcd, "etcd healthy", func(ctx context.Context) error {
		return httpGetOK(ctx, http.DefaultClient, etcdURL+"/health", `"health":"true"`)
	}); err != nil {
		return err
	}
	cp.opts.Logf("etcd healthy after %v", time.Since(t0).Round(time.Millisecond))

	p := func(name string) string { return filepath.Join(cp.Dir, "pki", name) }
	args := []string{
		"--etcd-servers=" + etcdURL,
		// Every address of the private namespace: pods reach it through
		// the kubernetes Service, tests through NodeIP or 127.0.0.1.
		"--bind-address=0.0.0.0",
		"--advertise-address=" + NodeIP,
		"--secure-port=" + strconv.Itoa(cp.opts.APIServerPort),
		"--tls-cert-file=" + p("apiserver.crt"),
		"--tls-private-key-file=" + p("apiserver.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--service-cluster-ip-range=" + cp.opts.ServiceCIDR,
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-client-certificate=" + p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + p("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + p("ca.crt"),
		// A node's InternalIP, never its name: nothing resolves node
		// names here.
		"--kubelet-preferred-address-types=InternalIP",
		// Webhooks and aggregated APIs are called at the endpoint (pod)
		// IP, so they work without kube-proxy (apiserver-only mode).
		"--enable-aggregator-routing=true",
		"--profiling=false",
		"--v=1",
	}
	args = append(args, cp.opts.ExtraAPIServerArgs...)
	if cp.apiserver, err = startProcess(cp.Dir, "kube-apiserver", cp.Binaries.KubeAPIServer, args, cp.opts.Detach); err != nil {
		return err
	}
	readyz := cp.Client.Discovery().RESTClient()
	if err := cp.waitFor(ctx, cp.apiserver, "kube-apiserver ready", func(ctx context.Context) error {
		body, err := readyz.Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, firstLine(body))
		}
		return nil
	}); err != nil {
		return err
	}
	cp.opts.Logf("kube-apiserver ready after %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// waitFor polls check until it succeeds, the component exits, or the
// timeout passes; the error then carries the end of the component's log.
func (cp *ControlPlane) waitFor(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	return waitFor(ctx, cp.opts.Timeout, what, func(ctx context.Context) error {
		if p != nil {
			if done, err := p.exited(); done {
				return permanent{p.failure(err)}
			}
		}
		return check(ctx)
	}, func(err error) error {
		if p != nil {
			return p.failure(err)
		}
		return err
	})
}

// permanent stops a wait at once.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// waitFor polls check every 200ms until it returns nil, returns a permanent
// error, or timeout passes. decorate adds context to a timeout.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error, decorate func(error) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 10*time.Second)
		last = check(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		var perm permanent
		if errors.As(last, &perm) {
			return fmt.Errorf("waiting for %s: %w", what, perm.error)
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("waiting for %s: gave up after %v: %w", what, timeout, last)
			if decorate != nil {
				err = decorate(err)
			}
			return err
		case <-tick.C:
		}
	}
}

// Stop stops the API server and etcd, and removes Dir if StartControlPlane
// created it (unless KeepDir). It is safe to call more than once.
func (cp *ControlPlane) Stop() {
	if cp == nil || cp.stopped {
		return
	}
	cp.stopped = true
	if cp.apiserver != nil {
		cp.apiserver.stop(15 * time.Second)
	}
	if cp.etcd != nil {
		cp.etcd.stop(10 * time.Second)
	}
	if cp.createdDir && !cp.opts.KeepDir {
		_ = unmountUnder(cp.Dir)
		_ = os.RemoveAll(cp.Dir)
	} else if cp.createdDir {
		_ = os.Remove(filepath.Join(cp.Dir, ownerLock))
	}
	release(cp.lock)
}

// Logs are the component log files, by component name.
func (cp *ControlPlane) Logs() map[string]string {
	logs := map[string]string{}
	entries, _ := os.ReadDir(filepath.Join(cp.Dir, "logs"))
	for _, e := range entries {
		logs[strings.TrimSuffix(e.Name(), ".log")] = filepath.Join(cp.Dir, "logs", e.Name())
	}
	return logs
}

func httpGetOK(ctx context.Context, c *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, firstLine(body))
	}
	return nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The namespace
// is private, so nobody else can take it before the component binds it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
