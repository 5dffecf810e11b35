// Command demo is the last part of `make demo` (mk/demo.mk builds what it
// needs first): on a running cluster it installs the chart, an OTLP sink as
// the gateway and a demo app in an opted-in namespace, then shows the
// telemetry arriving. `demo down` removes what `demo up` installed.
//
// Two kinds of cluster:
//
//   - the local cluster of `make local-cluster-up` (the default): images
//     are imported into its containerd, and the demo app's image is pushed
//     to a registry that runs in the cluster on the node's address, from
//     which the kubelet pulls it and the injector reads its entrypoint;
//
//   - any other cluster (KUBECONFIG set to it): every image is pushed to
//     -registry (DEMO_REGISTRY), with the credentials of ~/.docker/config.json.
//
//     demo up [-kubeconfig FILE] [-registry HOST/PREFIX] [-insecure-registry]
//     demo down [-kubeconfig FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// Namespaces of the demo.
const (
	nsGateway = "otel-gateway"
	nsDemo    = "demo"
)

type options struct {
	kubeconfig string
	registry   string
	insecure   bool
	local      bool
	localDir   string
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("demo "+cmd, flag.ExitOnError)
	var o options
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "the cluster (default: $KUBECONFIG, else the local cluster)")
	fs.StringVar(&o.registry, "registry", os.Getenv("DEMO_REGISTRY"), "for a cluster other than the local one: where to push the images (HOST[:PORT][/PREFIX], $DEMO_REGISTRY)")
	fs.BoolVar(&o.insecure, "insecure-registry", os.Getenv("DEMO_REGISTRY_INSECURE") == "true", "the registry speaks plain HTTP ($DEMO_REGISTRY_INSECURE=true)")
	_ = fs.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var err error
	switch cmd {
	case "up":
		err = withCluster(&o, func(cs kubernetes.Interface) error { return up(ctx, o, cs) })
	case "down":
		err = withCluster(&o, func(cs kubernetes.Interface) error { return down(ctx, o, cs) })
	case "_push": // inside the local cluster's network namespace
		err = pushInside(ctx, fs.Args())
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: demo up|down [-kubeconfig FILE] [-registry HOST/PREFIX] [-insecure-registry]")
	os.Exit(2)
}

// withCluster resolves which cluster the demo runs on and connects to it.
func withCluster(o *options, f func(kubernetes.Interface) error) error {
	root, err := gobuild.RepoRoot()
	if err != nil {
		return err
	}
	o.localDir = filepath.Join(root, ".cache", "localcluster")
	local := filepath.Join(o.localDir, "kubeconfig")
	if o.kubeconfig == "" {
		o.kubeconfig = local
	}
	if abs, err := filepath.Abs(o.kubeconfig); err == nil && abs == local {
		o.local = true
	}
	if _, err := os.Stat(o.kubeconfig); err != nil {
		if o.local {
			return errors.New("the local cluster is not running: make local-cluster-up (make demo starts it)")
		}
		return fmt.Errorf("kubeconfig %s: %w", o.kubeconfig, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", o.kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return f(cs)
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func info(format string, args ...any) {
	fmt.Printf("    "+format+"\n", args...)
}
