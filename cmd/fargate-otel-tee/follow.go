package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// followBinary is the follower, next to this executable in the image: it is
// a binary of its own because its TLS client would triple the size of the
// wrapper, which is copied into every pod.
const followBinary = "fargate-otel-follow"

// follow runs `fargate-otel-tee follow [flags]` as fargate-otel-follow
// [flags], in this process (exec), so that it gets the container's signals.
func follow(args []string, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	path := filepath.Join(filepath.Dir(self), followBinary)
	if _, err := os.Stat(path); err != nil {
		_, _ = fmt.Fprintf(stderr, "fargate-otel-tee: follow: %v: the follower ships next to fargate-otel-tee in its image (/%s); run the image's /fargate-otel-tee follow, not a copy installed into a pod\n", err, followBinary)
		return 2
	}
	err = syscall.Exec(path, append([]string{path}, args...), os.Environ())
	_, _ = fmt.Fprintf(stderr, "fargate-otel-tee: follow: run %s: %v\n", path, err)
	return 126
}
