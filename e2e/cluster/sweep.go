package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ownerLock is held (flock) by the process that owns a temporary cluster
// directory, for as long as it lives: the kernel releases it when the
// process dies, however it dies.
const ownerLock = "owner.lock"

const runDirPattern = "fargate-otel-cluster-*"

// newRunDir creates a temporary cluster directory owned by this process,
// after sweeping away the clusters of processes that died without Stop.
func newRunDir() (string, *os.File, error) {
	sweepStale()
	dir, err := os.MkdirTemp("", runDirPattern)
	if err != nil {
		return "", nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ownerLock), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return "", nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	return dir, lock, nil
}

// sweepStale tears down clusters left by test processes that were killed
// (a go test timeout, ^C): their components died with them, but pods'
// processes, containerd shims, mounts and cgroups outlive them. A directory
// whose owner lock can be taken has no live owner.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runDirPattern))
	for _, dir := range dirs {
		lock, err := os.OpenFile(filepath.Join(dir, ownerLock), os.O_RDWR, 0)
		if err != nil {
			continue // not created by newRunDir, or still being created
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = lock.Close()
			continue // alive
		}
		if err := sweep(dir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e/cluster: remove the stale cluster in %s: %v\n", dir, err)
		}
		_ = lock.Close()
	}
}

func sweep(dir string) error {
	var err error
	if s, serr := ReadState(dir); serr == nil {
		err = teardown(s, nil)
	} else {
		for _, name := range []string{"kube-apiserver", "etcd"} {
			err = errors.Join(err, stopByPIDFile(dir, name, 5*time.Second))
		}
		err = errors.Join(err, unmountUnder(dir))
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// release drops the owner lock of a directory that is gone.
func release(lock *os.File) {
	if lock != nil {
		_ = lock.Close()
	}
}
