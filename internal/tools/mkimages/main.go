// Command mkimages builds the images of fargate-otel without Docker, the
// same content as the Dockerfiles under cmd/<binary>/ produce: one layer
// FROM scratch with the static binary at /<binary>, the non-root user
// 65532, /tmp and, for the binaries that dial TLS servers of the outside
// world (registries, exporters), the CA certificates of this machine. Each
// image is written as a docker-archive tarball (`ctr -n k8s.io images
// import`, `docker load`) tagged ghcr.io/fargate-otel/<binary>:<version>.
//
//	go run ./internal/tools/mkimages -bin bin -out .cache/images
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fargate-otel/fargate-otel/internal/images"
	"github.com/fargate-otel/fargate-otel/internal/version"
)

// binaries: the in-cluster ones, and whether each needs CA certificates.
var binaries = []struct {
	name    string
	needsCA bool
}{
	{"fargate-otel-injector", true},   // registries (entrypoint look-ups)
	{"fargate-otel-nodeproxy", false}, // the API server only (its CA is mounted)
	{"fargate-otel-fleet", false},     // the API server and its peers (CAs mounted)
	{"fargate-otel-tee", false},       // copied into pods; no network
	{"fargate-otel-collector", true},  // exporters over TLS
	{"fargate-otel-gateway", true},    // AWS and vendor endpoints over TLS
}

// companions are more binaries an image holds at /<name>: the tee image
// carries the follower (fargate-otel-tee follow), which talks to the node
// proxy only, with its CA mounted.
var companions = map[string][]string{
	"fargate-otel-tee": {"fargate-otel-follow"},
}

func main() {
	binDir := flag.String("bin", "bin", "folder of the static binaries")
	out := flag.String("out", ".cache/images", "folder of the tarballs")
	registry := flag.String("registry", version.ImageRegistry, "repository prefix of the tags")
	tag := flag.String("tag", version.Version, "tag of every image")
	caFile := flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle put at the same path into the images that need one")
	only := flag.String("only", "", "comma-separated binaries to build (default: all)")
	flag.Parse()
	if err := run(*binDir, *out, *registry, *tag, *caFile, *only); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(binDir, out, registry, tag, caFile, only string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var ca []byte
	for _, b := range binaries {
		if only != "" && !contains(strings.Split(only, ","), b.name) {
			continue
		}
		spec := images.Spec{
			Ref:    registry + "/" + b.name + ":" + tag,
			Binary: filepath.Join(binDir, b.name),
			Labels: map[string]string{
				"org.opencontainers.image.title":   b.name,
				"org.opencontainers.image.version": tag,
				"org.opencontainers.image.source":  "https://github.com/fargate-otel/fargate-otel",
			},
		}
		for _, c := range companions[b.name] {
			if spec.Executables == nil {
				spec.Executables = map[string]string{}
			}
			spec.Executables["/"+c] = filepath.Join(binDir, c)
		}
		if b.needsCA {
			if ca == nil {
				var err error
				if ca, err = os.ReadFile(caFile); err != nil {
					return fmt.Errorf("CA certificates for %s: %w (install Debian's ca-certificates, or give -ca-certificates)", b.name, err)
				}
			}
			spec.Files = map[string][]byte{"/etc/ssl/certs/ca-certificates.crt": ca}
		}
		file := filepath.Join(out, b.name+".tar")
		if err := images.BuildArchive(file+".tmp", spec); err != nil {
			return fmt.Errorf("%s: %w (run `make build collector` first)", b.name, err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			return err
		}
		fi, err := os.Stat(file)
		if err != nil {
			return err
		}
		fmt.Printf("%-60s %s (%.1f MB)\n", spec.Ref, file, float64(fi.Size())/1e6)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}
