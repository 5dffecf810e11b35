package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// ProductImages are the project's images as `make images` built them.
type ProductImages struct {
	Tee, Collector, Injector, NodeProxy, Gateway, Fleet string
	// Archives are docker-archive tarballs of them, for `ctr images import`,
	// by reference.
	Archives map[string]string
}

// refs are the references, in a fixed order.
func (p ProductImages) refs() []*string {
	return []*string{&p.Tee, &p.Collector, &p.Injector, &p.NodeProxy, &p.Gateway, &p.Fleet}
}

// envImages is where the Makefile says `make images` put them.
const envImages = "FARGATE_OTEL_IMAGES_DIR"

// productBinaries are the images' files (<binary>.tar), in the order of
// the ProductImages fields.
var productBinaries = []string{"fargate-otel-tee", "fargate-otel-collector", "fargate-otel-injector", "fargate-otel-nodeproxy", "fargate-otel-gateway", "fargate-otel-fleet"}

// FindProductImages finds what `make images` built: the docker-archives in
// $FARGATE_OTEL_IMAGES_DIR (default <repo>/.cache/images), and the tag each
// carries.
func FindProductImages() (ProductImages, error) {
	dir := os.Getenv(envImages)
	if dir == "" {
		root, err := gobuild.RepoRoot()
		if err != nil {
			return ProductImages{}, err
		}
		dir = filepath.Join(root, ".cache", "images")
	}
	p := ProductImages{Archives: map[string]string{}}
	dst := []*string{&p.Tee, &p.Collector, &p.Injector, &p.NodeProxy, &p.Gateway, &p.Fleet}
	for i, b := range productBinaries {
		file := filepath.Join(dir, b+".tar")
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
		if err != nil {
			return p, fmt.Errorf("the image of %s: %w (run `make images`)", b, err)
		}
		if len(m) != 1 || len(m[0].RepoTags) != 1 {
			return p, fmt.Errorf("%s: want one image with one tag, as `make images` writes", file)
		}
		*dst[i] = m[0].RepoTags[0]
		p.Archives[m[0].RepoTags[0]] = file
	}
	return p, nil
}

// PushTo pushes every image to prefix (registry[/path]), keeping each
// repository's last element and tag, and returns the pushed references.
func (p ProductImages) PushTo(ctx context.Context, prefix string, nameOpts []name.Option, opts []remote.Option) (ProductImages, error) {
	out := ProductImages{Archives: map[string]string{}}
	dst := []*string{&out.Tee, &out.Collector, &out.Injector, &out.NodeProxy, &out.Gateway, &out.Fleet}
	for i, ref := range p.refs() {
		archive, ok := p.Archives[*ref]
		if !ok {
			return out, fmt.Errorf("no archive of %s: run `make images`", *ref)
		}
		tag, err := name.NewTag(*ref)
		if err != nil {
			return out, err
		}
		img, err := tarball.ImageFromPath(archive, &tag)
		if err != nil {
			return out, fmt.Errorf("read %s: %w", archive, err)
		}
		to := strings.TrimSuffix(prefix, "/") + "/" + path.Base(tag.RepositoryStr()) + ":" + tag.TagStr()
		r, err := name.ParseReference(to, nameOpts...)
		if err != nil {
			return out, err
		}
		if err := remote.Write(r, img, append(opts, remote.WithContext(ctx))...); err != nil {
			return out, fmt.Errorf("push %s: %w", to, err)
		}
		*dst[i] = to
	}
	return out, nil
}
