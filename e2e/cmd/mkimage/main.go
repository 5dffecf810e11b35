// Command mkimage builds a single-layer image FROM scratch around a static
// binary, without Docker, and writes it as a docker-archive tarball (for
// `ctr -n k8s.io images import` or `docker load`) or pushes it to a registry.
//
//	go run ./e2e/cmd/mkimage -ref localhost/fargate-otel/tee:dev -binary bin/fargate-otel-tee -out tee.tar
//	go run ./e2e/cmd/mkimage -ref 127.0.0.1:5000/app:v1 -binary app -entrypoint /app -entrypoint serve -push
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/fargate-otel/fargate-otel/internal/images"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var spec images.Spec
	var entrypoint, cmd, env list
	var out string
	var push bool
	flag.StringVar(&spec.Ref, "ref", "", "image reference, e.g. localhost/fargate-otel/tee:dev (required)")
	flag.StringVar(&spec.Binary, "binary", "", "static executable to put in the image (required)")
	flag.StringVar(&spec.Path, "path", "", "path of the binary in the image (default /<base name>)")
	flag.Var(&entrypoint, "entrypoint", "one ENTRYPOINT word; repeat for more (default: the binary's path)")
	flag.Var(&cmd, "cmd", "one CMD word; repeat for more")
	flag.Var(&env, "env", "KEY=VALUE added to the image's environment; repeatable")
	flag.StringVar(&spec.User, "user", images.NonRootUser, "USER of the image")
	flag.StringVar(&out, "out", "", "write a docker-archive tarball to this file")
	flag.BoolVar(&push, "push", false, "push to the registry named in -ref")
	flag.Parse()
	spec.Entrypoint, spec.Cmd, spec.Env = entrypoint, cmd, env
	if err := run(spec, out, push); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(spec images.Spec, out string, push bool) error {
	if spec.Ref == "" || spec.Binary == "" {
		return fmt.Errorf("-ref and -binary are required (see -help)")
	}
	if out == "" && !push {
		return fmt.Errorf("say where the image goes: -out FILE, -push, or both")
	}
	img, err := images.Build(spec)
	if err != nil {
		return err
	}
	if out != "" {
		if err := images.WriteArchive(out, spec.Ref, img); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%s)\n", out, spec.Ref)
	}
	if push {
		digest, err := images.Push(context.Background(), spec.Ref, img)
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s\n", spec.Ref, digest)
	}
	return nil
}
