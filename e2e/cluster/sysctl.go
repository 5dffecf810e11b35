package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// kubeletSysctls are the machine-wide kernel settings the kubelet rewrites
// at start (protectKernelDefaults: false; true would make it refuse to
// start here). The harness puts back what it found once no kubelet of ours
// runs any more.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// sysctlStateDir holds the values found before the first kubelet started,
// shared by every cluster on the machine (tests, localcluster).
const sysctlStateDir = "/run/fargate-otel-e2e"

func withSysctlLock(f func(snapshot string) error) error {
	if err := os.MkdirAll(sysctlStateDir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(sysctlStateDir, "sysctl.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	return f(filepath.Join(sysctlStateDir, "kubelet-sysctls.json"))
}

// saveHostSysctls records the settings before a kubelet changes them, unless
// an earlier cluster already did (its values are the machine's own).
func saveHostSysctls() error {
	return withSysctlLock(func(snapshot string) error {
		if _, err := os.Stat(snapshot); err == nil {
			return nil
		}
		// The kubelet also creates /var/lib/kubelet/device-plugins, a path
		// it does not take from --root-dir.
		if _, err := os.Stat(varLibKubelet); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(createdMarker(), nil, 0o644); err != nil {
				return err
			}
		}
		values := map[string]string{}
		for _, key := range kubeletSysctls {
			v, err := os.ReadFile("/proc/sys/" + key)
			if err != nil {
				continue
			}
			values[key] = strings.TrimSpace(string(v))
		}
		data, err := json.Marshal(values)
		if err != nil {
			return err
		}
		return os.WriteFile(snapshot, data, 0o644)
	})
}

// restoreHostSysctls writes the recorded settings back when no process runs
// the kubelet binary any more (another cluster may still need them).
func restoreHostSysctls(kubelet string) error {
	if resolved, err := filepath.EvalSymlinks(kubelet); err == nil {
		kubelet = resolved
	}
	return withSysctlLock(func(snapshot string) error {
		data, err := os.ReadFile(snapshot)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if anyProcessRuns(kubelet) {
			return nil
		}
		var values map[string]string
		if err := json.Unmarshal(data, &values); err != nil {
			return fmt.Errorf("%s: %w", snapshot, err)
		}
		var errs []error
		for key, v := range values {
			if err := os.WriteFile("/proc/sys/"+key, []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", key, v, err))
			}
		}
		if _, err := os.Stat(createdMarker()); err == nil {
			_ = os.RemoveAll(filepath.Join(varLibKubelet, "device-plugins"))
			_ = os.Remove(varLibKubelet) // only if nothing else is in it
			_ = os.Remove(createdMarker())
		}
		if len(errs) == 0 {
			errs = append(errs, os.Remove(snapshot))
		}
		return errors.Join(errs...)
	})
}

const varLibKubelet = "/var/lib/kubelet"

func createdMarker() string { return filepath.Join(sysctlStateDir, "created-var-lib-kubelet") }

func anyProcessRuns(bin string) bool {
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		if target, err := os.Readlink(exe); err == nil && strings.TrimSuffix(target, " (deleted)") == bin {
			var pid int
			if _, err := fmt.Sscanf(exe, "/proc/%d/exe", &pid); err == nil && runs(pid, bin) {
				return true
			}
		}
	}
	return false
}
