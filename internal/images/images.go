// Package images builds container images without Docker: one layer, FROM
// scratch, holding a static binary, a non-root user and /tmp. It writes them
// as docker-archive tarballs (what `docker save` writes and
// `ctr -n k8s.io images import` accepts) or pushes them to a registry.
//
// The images are reproducible: every timestamp is the Unix epoch and every
// file belongs to root, so the same binary gives the same digest.
//
// Both the release tool (internal/tools/mkimages, `make images`) and the
// end-to-end tests (e2e/cluster, e2e/scenario, e2e/cmd/mkimage) build their
// images with it; the programs of the tests' images stay under e2e/images.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// NonRootUser is the default user of the images: the uid and gid that
// distroless calls "nonroot".
const NonRootUser = "65532:65532"

// Spec describes an image.
type Spec struct {
	// Ref names the image, e.g. localhost/fargate-otel/pause:e2e.
	Ref string
	// Binary is the path of a static executable on this machine.
	Binary string
	// Path is where the binary goes in the image (default /<base name>).
	Path string
	// Entrypoint defaults to [Path].
	Entrypoint []string
	// Cmd is the default argument list.
	Cmd []string
	// Env is added to PATH=/usr/local/bin:/usr/bin:/bin.
	Env []string
	// User defaults to NonRootUser; "0" makes a root image.
	User string
	// Files are extra files (path in the image, contents), mode 0644.
	Files map[string][]byte
	// Executables are more static executables (path in the image, path on
	// this machine), mode 0755: a second binary that ships with the first.
	Executables map[string]string
	// Labels go into the image config.
	Labels map[string]string
}

var epoch = time.Unix(0, 0).UTC()

// Build makes the image in memory.
func Build(spec Spec) (v1.Image, error) {
	if spec.Binary == "" {
		return nil, errors.New("image spec: Binary is empty: give the path of a static executable")
	}
	if spec.Path == "" {
		spec.Path = "/" + path.Base(spec.Binary)
	}
	if !path.IsAbs(spec.Path) {
		return nil, fmt.Errorf("image spec: Path %q must be absolute", spec.Path)
	}
	if spec.User == "" {
		spec.User = NonRootUser
	}
	if len(spec.Entrypoint) == 0 {
		spec.Entrypoint = []string{spec.Path}
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("read the image's binary: %w", err)
	}
	execs := map[string][]byte{}
	for p, local := range spec.Executables {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("image spec: executable path %q must be absolute", p)
		}
		if execs[path.Clean(p)], err = os.ReadFile(local); err != nil {
			return nil, fmt.Errorf("read the image's executable %s: %w", p, err)
		}
	}
	layerTar, err := layer(spec, bin, execs)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   l,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "fargate-otel internal/images: " + spec.Path, Comment: "single layer FROM scratch"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, spec.Env...)
	cf.Config.User = spec.User
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = spec.Labels
	return mutate.ConfigFile(img, cf)
}

// layer is the image's only layer, an uncompressed tar.
func layer(spec Spec, bin []byte, execs map[string][]byte) ([]byte, error) {
	uid, gid := "65532", "65532"
	if u, g, ok := strings.Cut(spec.User, ":"); ok {
		uid, gid = u, g
	} else if spec.User != "" {
		uid, gid = spec.User, spec.User
	}
	passwd, group := "root:x:0:0:root:/root:/sbin/nologin\n", "root:x:0:\n"
	if uid != "0" {
		passwd += fmt.Sprintf("nonroot:x:%s:%s:nonroot:/tmp:/sbin/nologin\n", uid, gid)
	}
	if gid != "0" {
		group += fmt.Sprintf("nonroot:x:%s:\n", gid)
	}
	files := map[string][]byte{"/etc/passwd": []byte(passwd), "/etc/group": []byte(group)}
	for p, data := range spec.Files {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("image spec: file path %q must be absolute", p)
		}
		files[path.Clean(p)] = data
	}
	dirs := map[string]bool{"/tmp": true}
	addParents := func(p string) {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	addParents(spec.Path)
	for p := range files {
		addParents(p)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	header := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: strings.TrimPrefix(name, "/"), Mode: mode, Typeflag: typ, Size: size,
			ModTime: epoch, AccessTime: epoch, ChangeTime: epoch, Format: tar.FormatPAX}
	}
	for _, d := range sortedKeys(dirs) {
		mode := int64(0o755)
		if d == "/tmp" {
			mode = 0o1777 // writable by the non-root user, as on any system
		}
		if err := tw.WriteHeader(header(d+"/", mode, tar.TypeDir, 0)); err != nil {
			return nil, err
		}
	}
	files[spec.Path] = bin
	for p, data := range execs {
		files[p] = data
	}
	for _, p := range sortedKeys(files) {
		mode := int64(0o644)
		if _, ok := execs[p]; ok || p == spec.Path {
			mode = 0o755
		}
		if err := tw.WriteHeader(header(p, mode, tar.TypeReg, int64(len(files[p])))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[p]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteArchive writes img, tagged ref, as a docker-archive tarball.
func WriteArchive(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// BuildArchive builds the image of spec and writes it to file.
func BuildArchive(file string, spec Spec) error {
	img, err := Build(spec)
	if err != nil {
		return err
	}
	return WriteArchive(file, spec.Ref, img)
}

// Push uploads img to the registry of ref and returns its digest. Options are
// those of go-containerregistry's remote package (authentication, transport).
// Registries on localhost, loopback and private (RFC 1918) addresses are
// spoken to over plain HTTP, as go-containerregistry does by default.
func Push(ctx context.Context, ref string, img v1.Image, opts ...remote.Option) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return img.Digest()
}
