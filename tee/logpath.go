package tee

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/fargate-otel/fargate-otel/logrotate"
)

// Identity names the container whose log is written: the parts of the
// kubelet's path <namespace>_<pod>_<uid>/<container>.
type Identity struct {
	Namespace string
	Pod       string
	PodUID    string
	Container string
}

// Environment variables read when a flag is not given.
const (
	EnvLogDir    = "FARGATE_OTEL_LOG_DIR"
	EnvContainer = "FARGATE_OTEL_CONTAINER"
	EnvNamespace = "FARGATE_OTEL_NAMESPACE"
	EnvPod       = "FARGATE_OTEL_POD"
	EnvPodUID    = "FARGATE_OTEL_POD_UID"
)

// Files of a Downward API volume (--podinfo-dir) with the pod's identity.
const (
	PodinfoNamespace = "namespace"
	PodinfoName      = "name"
	PodinfoUID       = "uid"
)

// ResolveIdentity fills each part from, in order, the flag, the environment
// and the Downward API folder (when podinfoDir is not empty). Missing parts
// stay empty; the error lists the podinfo files that could not be read.
func ResolveIdentity(flags Identity, getenv func(string) string, podinfoDir string) (Identity, error) {
	id := flags
	var errs []error
	podinfo := func(file string) string {
		if podinfoDir == "" {
			return ""
		}
		b, err := os.ReadFile(filepath.Join(podinfoDir, file))
		if err != nil {
			errs = append(errs, err)
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	pick := func(v *string, env, file string) {
		if *v == "" {
			*v = getenv(env)
		}
		if *v == "" && file != "" {
			*v = podinfo(file)
		}
	}
	pick(&id.Namespace, EnvNamespace, PodinfoNamespace)
	pick(&id.Pod, EnvPod, PodinfoName)
	pick(&id.PodUID, EnvPodUID, PodinfoUID)
	pick(&id.Container, EnvContainer, "")
	return id, errors.Join(errs...)
}

// Missing names the flags of the parts that are empty.
func (id Identity) Missing() []string {
	var out []string
	for _, p := range []struct{ v, flag string }{
		{id.Namespace, "--namespace"}, {id.Pod, "--pod"}, {id.PodUID, "--pod-uid"}, {id.Container, "--container"},
	} {
		if p.v == "" {
			out = append(out, p.flag)
		}
	}
	return out
}

// The collector's container parser reads the identity back from the path with
// a regular expression (pkg/stanza operator/parser/container); values it
// would not read back are refused here rather than mis-tagged there.
var (
	namePart      = regexp.MustCompile(`^[^_/\x00]+$`)
	uidPart       = regexp.MustCompile(`^[a-f0-9-]+$`)
	containerPart = regexp.MustCompile(`^[^._/\x00]+$`)
)

// Check says which parts cannot be used in the kubelet's path.
func (id Identity) Check() error {
	var errs []error
	for _, p := range []struct {
		v, flag, want string
		re            *regexp.Regexp
	}{
		{id.Namespace, "--namespace", "no '_' or '/'", namePart},
		{id.Pod, "--pod", "no '_' or '/'", namePart},
		{id.PodUID, "--pod-uid", "lower-case hex digits and '-'", uidPart},
		{id.Container, "--container", "no '.', '_' or '/'", containerPart},
	} {
		if p.v != "" && (!p.re.MatchString(p.v) || p.v == "." || p.v == "..") {
			errs = append(errs, fmt.Errorf("%s %q: a Kubernetes name has %s", p.flag, p.v, p.want))
		}
	}
	return errors.Join(errs...)
}

// ContainerLogDir is the kubelet's folder for the container's logs.
func ContainerLogDir(root string, id Identity) string {
	return filepath.Join(root, id.Namespace+"_"+id.Pod+"_"+id.PodUID, id.Container)
}

// restartLog matches the files of the container's folder: <n>.log and its
// kubelet-style backups <n>.log.<YYYYMMDD-HHMMSS>.
var restartLog = regexp.MustCompile(`^(\d+)\.log(\.\d{8}-\d{6})?$`)

// IsRestartLog says whether a file name is a log of some restart.
func IsRestartLog(name string) bool { return restartLog.MatchString(name) }

// NextRestart is one more than the highest restart number that has a log in
// dir, 0 for an empty folder. The folder is an emptyDir: it survives
// container restarts, as the kubelet's does.
func NextRestart(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	next := 0
	for _, e := range entries {
		m := restartLog.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if n, err := strconv.Atoi(m[1]); err == nil && n+1 > next {
			next = n + 1
		}
	}
	return next, nil
}

// Folder modes. The pod's folder is shared by the pod's containers, which
// may run as different users: like the emptyDir root itself it is writable
// by all, with the sticky bit so that none can remove another's folder. Each
// container's folder and files are readable by all (the collector is another
// user) and writable by their owner only.
const (
	podDirMode       = 0o777 | os.ModeSticky
	containerDirMode = logrotate.DirMode
)

// OpenContainerLog creates the container's folder under root (which must
// exist: it is the logs volume) and a new log file for this restart, and
// opens it for rotation with opts. The budget of opts covers the logs of
// earlier restarts too: they are deleted first.
func OpenContainerLog(root string, id Identity, opts logrotate.Options) (*logrotate.Writer, error) {
	dir, err := makeContainerDir(root, id)
	if err != nil {
		return nil, err
	}
	n, err := NextRestart(dir)
	if err != nil {
		return nil, fmt.Errorf("log folder %s: %w", dir, err)
	}
	// O_EXCL: two starts racing in one folder get two numbers.
	var path string
	for ; ; n++ {
		path = filepath.Join(dir, strconv.Itoa(n)+".log")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, logrotate.FileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create log file: %w", err)
		}
		_ = f.Chmod(logrotate.FileMode)
		_ = f.Close()
		break
	}
	opts.Siblings = IsRestartLog
	return logrotate.Open(path, opts)
}

// OpenRestartLog opens the log file of a given restart of the container,
// <restart>.log, creating it and the folders as OpenContainerLog does, and
// appends to it if it exists: the follower, which learns the restart number
// from the kubelet and may resume a file it wrote before.
func OpenRestartLog(root string, id Identity, restart int, opts logrotate.Options) (*logrotate.Writer, error) {
	if restart < 0 {
		return nil, fmt.Errorf("restart number %d: use 0 or more", restart)
	}
	dir, err := makeContainerDir(root, id)
	if err != nil {
		return nil, err
	}
	opts.Siblings = IsRestartLog
	return logrotate.Open(filepath.Join(dir, strconv.Itoa(restart)+".log"), opts)
}

// makeContainerDir checks the identity and creates the pod's and the
// container's folders under root, which must exist.
func makeContainerDir(root string, id Identity) (string, error) {
	if missing := id.Missing(); len(missing) > 0 {
		return "", fmt.Errorf("the container's identity is incomplete: set %s (or their FARGATE_OTEL_* variables, or --podinfo-dir)", strings.Join(missing, ", "))
	}
	if err := id.Check(); err != nil {
		return "", err
	}
	info, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("log folder %s: %w (is the logs volume mounted there?)", root, err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("log folder %s is not a folder", root)
	}
	dir := ContainerLogDir(root, id)
	if err := logrotate.MkdirAll(filepath.Dir(dir), podDirMode); err != nil {
		return "", err
	}
	if err := logrotate.MkdirAll(dir, containerDirMode); err != nil {
		return "", err
	}
	return dir, nil
}

// Install copies the running executable into dir as fargate-otel-tee, through
// a temporary file and a rename so that a reader never sees half a binary.
// It returns the path written.
func Install(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	src, err := os.Open(self)
	if err != nil {
		if src, err = os.Open("/proc/self/exe"); err != nil {
			return "", fmt.Errorf("read my own executable: %w", err)
		}
	}
	defer func() { _ = src.Close() }()
	dst := filepath.Join(dir, "fargate-otel-tee")
	tmp, err := os.CreateTemp(dir, ".fargate-otel-tee-*")
	if err != nil {
		return "", fmt.Errorf("install into %s: %w (is it a writable volume?)", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.ReadFrom(src); err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	ok = true
	return dst, nil
}
