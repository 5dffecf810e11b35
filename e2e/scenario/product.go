package scenario

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ProductImages are the project's images as `make images` built them.
type ProductImages struct {
	Tee, Collector, Injector, NodeProxy string
	// Archives are docker-archive tarballs of them, for `ctr images import`,
	// by reference.
	Archives map[string]string
}

// refs are the four references, in a fixed order.
func (p ProductImages) refs() []*string {
	return []*string{&p.Tee, &p.Collector, &p.Injector, &p.NodeProxy}
}

// envImages is where the Makefile says `make images` put them.
const envImages = "FARGATE_OTEL_IMAGES_DIR"

// FindProductImages finds what `make images` built.
func FindProductImages() (ProductImages, error) {
	dir := os.Getenv(envImages)
	if dir == "" {
		return ProductImages{}, fmt.Errorf("$%s is unset: run `make images`, or the test through `make e2e`", envImages)
	}
	return ProductImages{}, fmt.Errorf("not yet")
}

// PushTo pushes every image to prefix (registry[/path]), keeping each
// repository's last element and tag, and returns the pushed references.
func (p ProductImages) PushTo(ctx context.Context, prefix string, nameOpts []name.Option, opts []remote.Option) (ProductImages, error) {
	out := ProductImages{Archives: map[string]string{}}
	dst := []*string{&out.Tee, &out.Collector, &out.Injector, &out.NodeProxy}
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
