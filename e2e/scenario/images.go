package scenario

import (
	"context"
	"fmt"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/images"
)

// Images of the scenario itself (the product's come from `make images`).
const (
	// SinkImage and RegistryImage are imported into containerd (pull
	// policy Never) on the local cluster.
	SinkImage     = "localhost/fargate-otel-demo/otlp-sink:v1"
	RegistryImage = "localhost/fargate-otel-demo/registry:v1"
	// AppRepository is the demo app's repository in a registry.
	AppRepository = "fargate-otel-demo/demo-app"
)

// AppCmd is the demo app image's CMD: a line a second on each stream, a
// trace every 10 lines, and what became of each trace on stderr.
var AppCmd = []string{"-interval=1s", "-otlp-log"}

// AppEntrypoint is the demo app image's ENTRYPOINT.
var AppEntrypoint = []string{"/demoapp"}

// Binaries are the scenario's static executables.
type Binaries struct{ App, Sink, Registry string }

// BuildBinaries builds the demo app, the sink and the registry into dir.
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{
		App:      filepath.Join(dir, "demoapp"),
		Sink:     filepath.Join(dir, "otlpsink"),
		Registry: filepath.Join(dir, "registry"),
	}
	for pkg, out := range map[string]string{
		"./e2e/images/demoapp":  b.App,
		"./e2e/images/otlpsink": b.Sink,
		"./e2e/images/registry": b.Registry,
	} {
		if err := cluster.BuildGoBinary(ctx, pkg, out); err != nil {
			return b, err
		}
	}
	return b, nil
}

// SinkSpec and RegistrySpec are the images of the sink and the registry.
func (b Binaries) SinkSpec() images.Spec {
	return images.Spec{Ref: SinkImage, Binary: b.Sink, Path: "/otlpsink"}
}

func (b Binaries) RegistrySpec() images.Spec {
	return images.Spec{Ref: RegistryImage, Binary: b.Registry, Path: "/registry"}
}

// AppImage builds the demo app's image, with ENTRYPOINT and CMD in its
// config (the pods give no command, so the injector must read them), and
// returns it with its reference in registry (host[:port][/prefix]): the tag
// is the start of its digest, so that a changed app is a new tag and a
// kubelet never runs a stale one.
func (b Binaries) AppImage(registry string) (v1.Image, string, error) {
	img, err := images.Build(images.Spec{Binary: b.App, Path: "/demoapp", Entrypoint: AppEntrypoint, Cmd: AppCmd,
		Labels: map[string]string{"org.opencontainers.image.title": "fargate-otel demo app"}})
	if err != nil {
		return nil, "", err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, "", err
	}
	return img, fmt.Sprintf("%s/%s:%s", registry, AppRepository, d.Hex[:12]), nil
}
