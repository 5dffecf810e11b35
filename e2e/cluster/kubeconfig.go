package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fargate-otel/fargate-otel/internal/pki/pkitest"
)

type controlPlanePKI struct {
	ca            *CA
	admin         *KeyPair
	kubeletClient *KeyPair
}

// writePKI creates the CA, the API server's certificates and the service
// account key pair under dir/pki.
func writePKI(dir, serviceCIDR string) (*controlPlanePKI, error) {
	pkiDir := filepath.Join(dir, "pki")
	ca, err := pkitest.NewCA("fargate-otel-e2e-ca")
	if err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "ca.key")); err != nil {
		return nil, err
	}
	kubernetesIP, err := firstServiceIP(serviceCIDR)
	if err != nil {
		return nil, err
	}
	cpPKI := &controlPlanePKI{ca: ca}
	if _, err := issueFiles(ca, pkiDir, "apiserver", CertSpec{CommonName: "kube-apiserver", Server: true, Hosts: []string{
		"127.0.0.1", NodeIP, kubernetesIP, "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	}}); err != nil {
		return nil, err
	}
	if cpPKI.kubeletClient, err = issueFiles(ca, pkiDir, "apiserver-kubelet-client",
		CertSpec{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"system:masters"}, Client: true}); err != nil {
		return nil, err
	}
	if cpPKI.admin, err = issueFiles(ca, pkiDir, "admin",
		CertSpec{CommonName: "admin", Organizations: []string{"system:masters"}, Client: true}); err != nil {
		return nil, err
	}
	if err := writeServiceAccountKey(pkiDir); err != nil {
		return nil, err
	}
	return cpPKI, nil
}

// issueFiles issues a certificate and writes it as dir/name.{crt,key}.
func issueFiles(ca *CA, dir, name string, spec CertSpec) (*KeyPair, error) {
	kp, err := ca.Issue(spec)
	if err != nil {
		return nil, err
	}
	if err := kp.WriteFiles(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")); err != nil {
		return nil, err
	}
	return kp, nil
}

// firstServiceIP is the address the kubernetes Service gets: the first of
// the service range.
func firstServiceIP(cidr string) (string, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return "", fmt.Errorf("service CIDR %q: %w", cidr, err)
	}
	ip := n.IP.To4()
	if ip == nil {
		return "", fmt.Errorf("service CIDR %q: only IPv4 is supported", cidr)
	}
	first := make(net.IP, 4)
	copy(first, ip)
	first[3]++
	return first.String(), nil
}

func restConfig(url string, ca *CA, user *KeyPair) *rest.Config {
	return &rest.Config{
		Host: url,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   ca.CertPEM,
			CertData: user.CertPEM,
			KeyData:  user.KeyPEM,
		},
		QPS:   100,
		Burst: 200,
	}
}

// writeKubeconfig writes a kubeconfig with embedded credentials, so that it
// can be copied anywhere.
func writeKubeconfig(path, url string, ca *CA, user *KeyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fargate-otel-e2e"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: ca.CertPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: user.CertPEM, ClientKeyData: user.KeyPEM}
	cfg.Contexts["fargate-otel-e2e"] = &clientcmdapi.Context{Cluster: "fargate-otel-e2e", AuthInfo: "user"}
	cfg.CurrentContext = "fargate-otel-e2e"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}
