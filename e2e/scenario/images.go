package scenario

import (
	"context"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/images"
)

// Images of the scenario itself (the product's come from `make images`).
// Every tag is the start of the image's digest, so that a changed binary is
// a new tag: a Deployment then rolls, and a kubelet never runs a stale image.
const (
	// SinkRepository and RegistryRepository are imported into containerd
	// (pull policy Never) on the local cluster.
	SinkRepository     = "localhost/fargate-otel-demo/otlp-sink"
	RegistryRepository = "localhost/fargate-otel-demo/registry"
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
		if err := gobuild.Build(ctx, pkg, out); err != nil {
			return b, err
		}
	}
	return b, nil
}

// SinkImage is the sink's image and its reference under repo.
func (b Binaries) SinkImage(repo string) (v1.Image, string, error) {
	return build(images.Spec{Binary: b.Sink, Path: "/otlpsink"}, repo)
}

// RegistryImage is the registry's image and its reference under repo.
func (b Binaries) RegistryImage(repo string) (v1.Image, string, error) {
	return build(images.Spec{Binary: b.Registry, Path: "/registry"}, repo)
}

// AppImage is the demo app's image, with ENTRYPOINT and CMD in its config
// (the pods give no command, so the injector must read them), and its
// reference in registry (host[:port][/prefix]).
func (b Binaries) AppImage(registry string) (v1.Image, string, error) {
	return build(images.Spec{Binary: b.App, Path: "/demoapp", Entrypoint: AppEntrypoint, Cmd: AppCmd,
		Labels: map[string]string{"org.opencontainers.image.title": "fargate-otel demo app"}}, registry+"/"+AppRepository)
}

// build makes the image of spec, tagged repo:<first 12 digits of its digest>.
func build(spec images.Spec, repo string) (v1.Image, string, error) {
	img, err := images.Build(spec)
	if err != nil {
		return nil, "", err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, "", err
	}
	return img, repo + ":" + d.Hex[:12], nil
}

// WriteArchive writes img, tagged ref, as a docker-archive in dir for
// `ctr images import`, and returns the file.
func WriteArchive(dir, ref string, img v1.Image) (string, error) {
	file := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	return file, images.WriteArchive(file, ref, img)
}
