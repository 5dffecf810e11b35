package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PauseImage is the sandbox image, built from e2e/images/pause and imported
// at start; containerd never pulls it.
const PauseImage = "localhost/fargate-otel-e2e/pause:v1"

// RegistryHost is where a test may serve an image registry (for instance
// go-containerregistry's pkg/registry on net.Listen("tcp", RegistryHost)):
// containerd pulls images named RegistryHost/... from it over plain HTTP,
// and pods reach it too, at the node's address.
const RegistryHost = NodeIP + ":5000"

type nodeConfigFiles struct {
	containerd, kubelet, kubeProxy string
}

// writeNodeConfigs writes the configuration files of containerd, the CNI
// bridge, the kubelet and kube-proxy. Every path, socket and cgroup is the
// cluster's own, so that several clusters can run on one machine.
func writeNodeConfigs(s State) (nodeConfigFiles, error) {
	f := nodeConfigFiles{
		containerd: filepath.Join(s.Dir, "containerd", "config.toml"),
		kubelet:    filepath.Join(s.Dir, "kubelet.yaml"),
		kubeProxy:  filepath.Join(s.Dir, "kube-proxy.yaml"),
	}
	pki := func(name string) string { return filepath.Join(s.Dir, "pki", name) }
	kubelet := map[string]any{
		"apiVersion":         "kubelet.config.k8s.io/v1beta1",
		"kind":               "KubeletConfiguration",
		"address":            NodeIP,
		"port":               10250,
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        10248,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": pki("ca.crt")},
		},
		"authorization":            map[string]any{"mode": "Webhook"},
		"tlsCertFile":              pki("kubelet-serving.crt"),
		"tlsPrivateKeyFile":        pki("kubelet-serving.key"),
		"containerRuntimeEndpoint": "unix://" + s.ContainerdSocket,
		"cgroupDriver":             "cgroupfs",
		// Pods live under a cgroup of this cluster's own, so that two
		// clusters on one machine never touch each other's pods.
		"cgroupRoot": s.CgroupRoot,
		// This machine runs cgroup v1, which kubelet 1.35 refuses by
		// default (KEP-5573).
		"failCgroupV1":  false,
		"failSwapOn":    false,
		"clusterDomain": ClusterDomain,
		"clusterDNS":    []string{DNSServiceIP},
		// Not the machine's resolv.conf: nothing in the cluster may talk
		// to the machine's DNS servers.
		"resolvConf": filepath.Join(s.Dir, "resolv.conf"),
		"podLogsDir": filepath.Join(s.Dir, "pod-logs"),
		"evictionHard": map[string]string{
			"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
		},
		// Imported images cannot be pulled again: never collect them.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"serializeImagePulls":         false,
		"rotateCertificates":          false,
		"serverTLSBootstrap":          false,
		"syncFrequency":               "10s",
		"fileCheckFrequency":          "10s",
		"nodeStatusUpdateFrequency":   "5s",
		"registerNode":                true,
	}
	kubeProxy := map[string]any{
		"apiVersion":         "kubeproxy.config.k8s.io/v1alpha1",
		"kind":               "KubeProxyConfiguration",
		"clientConnection":   map[string]any{"kubeconfig": filepath.Join(s.Dir, "kube-proxy.kubeconfig")},
		"hostnameOverride":   s.NodeName,
		"bindAddress":        "0.0.0.0",
		"healthzBindAddress": "127.0.0.1:10256",
		"metricsBindAddress": "127.0.0.1:10249",
		"mode":               "iptables",
		"clusterCIDR":        PodCIDR,
		// Zero leaves the machine-wide conntrack sysctls alone.
		"conntrack": map[string]any{
			"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
		},
		"iptables": map[string]any{"localhostNodePorts": false, "masqueradeAll": s.MasqueradeAll, "minSyncPeriod": "0s", "syncPeriod": "30s"},
	}
	cni := map[string]any{
		"cniVersion": "0.4.0",
		"name":       s.CNINetwork,
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
			// A pod can reach itself through its own Service.
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": PodCIDR}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": filepath.Join(s.Dir, "cni", "ipam"),
			},
		}},
	}
	for path, v := range map[string]any{
		f.kubelet:   kubelet,
		f.kubeProxy: kubeProxy,
		filepath.Join(s.Dir, "cni", "net.d", "10-bridge.conflist"): cni,
	} {
		// YAML is a superset of JSON: the components read these as is.
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return f, err
		}
		if err := writeFile(path, data); err != nil {
			return f, err
		}
	}
	if err := writeFile(filepath.Join(s.Dir, "resolv.conf"), []byte("# no upstream DNS: the e2e cluster has no way out\n")); err != nil {
		return f, err
	}
	if err := writeFile(f.containerd, []byte(containerdConfig(s))); err != nil {
		return f, err
	}
	return f, nil
}

// containerdConfig is containerd 1.6's configuration (version 2).
func containerdConfig(s State) string {
	d := filepath.Join(s.Dir, "containerd")
	r := strings.NewReplacer("$DIR", d, "$SOCK", s.ContainerdSocket, "$PAUSE", PauseImage,
		"$CNI_CONF", filepath.Join(s.Dir, "cni", "net.d"), "$REGISTRY", RegistryHost)
	return r.Replace(`version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj (the kubelet
  # asks -998 for sandboxes) fails with EPERM unless containerd clamps it.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory, not /run/netns, so
  # that teardown finds exactly this cluster's.
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"

  # A registry a test serves in the namespace (RegistryHost) speaks plain
  # HTTP: images named $REGISTRY/... are pulled from it.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF"
    max_conf_num = 1
`)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
