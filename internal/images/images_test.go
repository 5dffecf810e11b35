package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeBinary stands in for a static executable: the package copies bytes, it
// never runs them.
func fakeBinary(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type entry struct {
	mode    int64
	uid     int
	content string
}

func layerEntries(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	entries := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		entries[h.Name] = entry{mode: h.Mode, uid: h.Uid, content: string(data)}
	}
	return entries
}

func TestBuild(t *testing.T) {
	bin := fakeBinary(t, "#binary")
	img, err := Build(Spec{Ref: "localhost/x:v1", Binary: bin, Path: "/usr/bin/app", Cmd: []string{"serve"}, Env: []string{"A=b"},
		Files: map[string][]byte{"/etc/app/config.yaml": []byte("k: v")}, Executables: map[string]string{"/usr/bin/helper": fakeBinary(t, "#helper")}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/bin/app"}) || !slices.Equal(cf.Config.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.Config.User != NonRootUser || cf.OS != "linux" || !slices.Contains(cf.Config.Env, "A=b") {
		t.Errorf("config: %+v", cf.Config)
	}
	got := layerEntries(t, img)
	want := map[string]entry{
		"tmp/":                {mode: 0o1777},
		"usr/":                {mode: 0o755},
		"usr/bin/":            {mode: 0o755},
		"usr/bin/app":         {mode: 0o755, content: "#binary"},
		"usr/bin/helper":      {mode: 0o755, content: "#helper"},
		"etc/":                {mode: 0o755},
		"etc/app/":            {mode: 0o755},
		"etc/app/config.yaml": {mode: 0o644, content: "k: v"},
		"etc/passwd":          {mode: 0o644, content: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n"},
		"etc/group":           {mode: 0o644, content: "root:x:0:\nnonroot:x:65532:\n"},
	}
	for p, w := range want {
		if g, ok := got[p]; !ok || g != w {
			t.Errorf("%s: got %+v (present %v), want %+v", p, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("layer has %d entries, want %d: %v", len(got), len(want), got)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	bin := fakeBinary(t, "same bytes")
	digest := func() v1.Hash {
		img, err := Build(Spec{Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds of the same binary differ: %s %s", a, b)
	}
}

func TestBuildRejectsBadSpecs(t *testing.T) {
	bin := fakeBinary(t, "x")
	for name, spec := range map[string]Spec{
		"no binary":      {},
		"relative path":  {Binary: bin, Path: "app"},
		"missing binary": {Binary: filepath.Join(t.TempDir(), "nope")},
		"relative file":  {Binary: bin, Files: map[string][]byte{"etc/x": nil}},
	} {
		if _, err := Build(spec); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The archive must be what `docker save` writes, which is what
// `ctr images import` reads: manifest.json naming the config and layers,
// and the tag in RepoTags. The cluster tests import it into a real containerd.
func TestWriteArchive(t *testing.T) {
	file := filepath.Join(t.TempDir(), "img.tar")
	spec := Spec{Ref: "localhost/fargate-otel/app:e2e", Binary: fakeBinary(t, "bin")}
	if err := BuildArchive(file, spec); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(spec.Ref)
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{spec.Ref}) || len(m[0].Layers) != 1 {
		t.Fatalf("manifest.json: %+v", m)
	}
	if got := layerEntries(t, img)["app"]; got.content != "bin" {
		t.Errorf("binary in the archived layer: %+v", got)
	}
}

func TestPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := Build(Spec{Binary: fakeBinary(t, "pushed"), Entrypoint: []string{"/app", "--flag"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("%s/fargate-otel/app:v1", host)
	digest, err := Push(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pulled.Digest(); d != digest {
		t.Errorf("pulled digest %s, pushed %s", d, digest)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/app", "--flag"}) {
		t.Errorf("pulled entrypoint %q", cf.Config.Entrypoint)
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
