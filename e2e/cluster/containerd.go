package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/internal/images"
)

func (c *Cluster) startContainerd(bins Binaries, detached bool) error {
	proc, err := startProcess(c.state.Dir, "containerd", bins.Containerd, []string{"--config", c.configs.containerd}, detached)
	if err != nil {
		return err
	}
	c.processes["containerd"] = proc
	return nil
}

// ctr runs containerd's CLI against this cluster's containerd, in the
// namespace the kubelet uses.
func (c *Cluster) ctr(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.ContainerdSocket, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// ImportImage imports a docker-archive (or OCI) tarball into the cluster's
// containerd, where pods with imagePullPolicy: Never (or IfNotPresent) find
// it by the tag it carries.
func (c *Cluster) ImportImage(ctx context.Context, tarball string) error {
	_, err := c.ctr(ctx, "images", "import", tarball)
	return err
}

// LoadImage builds the image of spec (see package internal/images) and imports it.
func (c *Cluster) LoadImage(ctx context.Context, spec images.Spec) error {
	dir := filepath.Join(c.state.Dir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(spec.Ref)+".tar")
	if err := images.BuildArchive(file, spec); err != nil {
		return err
	}
	return c.ImportImage(ctx, file)
}

// importBootImages waits for containerd and imports the images the cluster
// itself runs: the pause sandbox and CoreDNS.
func (c *Cluster) importBootImages(ctx context.Context, coredns string) error {
	proc := c.processes["containerd"]
	if err := waitFor(ctx, c.opts.Timeout, "containerd serving", func(ctx context.Context) error {
		if done, err := proc.exited(); done {
			return permanent{proc.failure(err)}
		}
		_, err := c.ctr(ctx, "version")
		return err
	}, proc.failure); err != nil {
		return err
	}
	pause := filepath.Join(c.state.Dir, "images", "pause")
	if err := gobuild.Build(ctx, "./e2e/images/pause", pause); err != nil {
		return err
	}
	// Non-root, as the upstream pause image (65535).
	if err := c.LoadImage(ctx, images.Spec{Ref: PauseImage, Binary: pause, Path: "/pause", User: "65535:65535"}); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	if err := c.LoadImage(ctx, images.Spec{Ref: CoreDNSImage, Binary: coredns, Path: "/coredns"}); err != nil {
		return fmt.Errorf("CoreDNS image: %w", err)
	}
	return nil
}
