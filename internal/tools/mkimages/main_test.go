package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/internal/gobuild"
)

// TestImagesWithoutDocker builds every image from stand-in binaries and
// checks what the chart and the injector rely on: the tag, the binary at
// /<binary> as the entrypoint, a non-root user, /tmp, and CA certificates
// where TLS to the outside is needed.
func TestImagesWithoutDocker(t *testing.T) {
	bin, out := t.TempDir(), t.TempDir()
	for _, b := range binaries {
		for _, n := range append([]string{b.name}, companions[b.name]...) {
			if err := os.WriteFile(filepath.Join(bin, n), []byte("#!stand-in "+n), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(bin, out, "ghcr.io/fargate-otel", "1.2.3", ca, ""); err != nil {
		t.Fatal(err)
	}
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			ref := "ghcr.io/fargate-otel/" + b.name + ":1.2.3"
			tag, err := name.NewTag(ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(filepath.Join(out, b.name+".tar"), &tag)
			if err != nil {
				t.Fatalf("%s is not in its archive: %v", ref, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"/" + b.name}; !slices.Equal(cf.Config.Entrypoint, want) {
				t.Errorf("entrypoint %v, want %v", cf.Config.Entrypoint, want)
			}
			if cf.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532", cf.Config.User)
			}
			files := imageFiles(t, img)
			if files["/"+b.name] != "#!stand-in "+b.name {
				t.Errorf("/%s does not hold the binary", b.name)
			}
			for _, c := range companions[b.name] {
				if files["/"+c] != "#!stand-in "+c {
					t.Errorf("/%s does not hold %s", c, c)
				}
			}
			if _, ok := files["/tmp/"]; !ok {
				t.Error("no /tmp")
			}
			if _, ok := files["/etc/ssl/certs/ca-certificates.crt"]; ok != b.needsCA {
				t.Errorf("CA certificates present: %v, want %v", ok, b.needsCA)
			}
		})
	}
	// The injector's init container runs the tee from where the image keeps it.
	if injector.TeeImageBinary != "/fargate-otel-tee" {
		t.Errorf("the tee image keeps the binary at /fargate-otel-tee, the injector runs %s", injector.TeeImageBinary)
	}
}

// imageFiles is the image's file system: path -> content ("" for folders,
// whose paths end in /).
func imageFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimPrefix(h.Name, "/")
		if h.Typeflag == tar.TypeDir {
			files[strings.TrimSuffix(p, "/")+"/"] = ""
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = string(b)
	}
}

// TestDockerfiles: the Dockerfile of each binary makes the same image as
// `make images`: a non-root, static base (scratch or distroless static),
// the binary at /<binary>, run as the entrypoint.
func TestDockerfiles(t *testing.T) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`)
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, "cmd", b.name, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			df := string(data)
			stages := from.FindAllStringSubmatch(df, -1)
			if len(stages) == 0 {
				t.Fatal("no FROM")
			}
			final := stages[len(stages)-1][1]
			if final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
				t.Errorf("final stage FROM %s: want scratch or distroless static", final)
			}
			if b.needsCA && final == "scratch" {
				t.Error("FROM scratch has no CA certificates, which this binary needs")
			}
			last := df[strings.LastIndex(df, "FROM "):]
			for _, want := range []string{
				"COPY --from=build /out/" + b.name + " /" + b.name + "\n",
				"USER 65532:65532\n",
				`ENTRYPOINT ["/` + b.name + `"]`,
			} {
				if !strings.Contains(last, want) {
					t.Errorf("the final stage lacks %q", strings.TrimSpace(want))
				}
			}
			if !strings.Contains(df, "CGO_ENABLED=0") {
				t.Error("the binary is not built static (CGO_ENABLED=0)")
			}
		})
	}
}

// TestNoDependencyOnTheTests: the build tools, the binaries and their
// libraries never import the tests' tree (e2e/): what both need, such as
// the image builder, lives under internal/.
func TestNoDependencyOnTheTests(t *testing.T) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCommand(), "list", "-deps", "-f", "{{.ImportPath}} {{.Imports}}",
		"./cmd/...", "./internal/...", "./injector/...", "./nodeproxy/...", "./tee/...", "./logrotate/...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const tests = "github.com/fargate-otel/fargate-otel/e2e"
	for _, line := range strings.Split(string(out), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(strings.Trim(imports, "[]")) {
			if imp == tests || strings.HasPrefix(imp, tests+"/") {
				t.Errorf("%s imports %s, a package of the tests' tree; move what they share under internal/", pkg, imp)
			}
		}
	}
}

func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}
