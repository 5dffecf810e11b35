//go:build tools

// Package k8sbin pins the Kubernetes release whose binaries the e2e harness
// runs. It lives in its own module so that the root module's dependency graph
// never sees k8s.io/kubernetes; `make k8s-bins` builds the commands below.
package k8sbin

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
