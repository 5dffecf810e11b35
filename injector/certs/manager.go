package certs

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/fargate-otel/fargate-otel/internal/pki"
)

// FileSync copies keys of a Secret to files of a folder on this replica.
type FileSync struct {
	Secret string
	Dir    string
	// Files maps a Secret key to a file name in Dir.
	Files map[string]string
}

// Options of Setup.
type Options struct {
	Config Config
	// Files are written on every replica from the Secrets.
	Files []FileSync
	// Interval is how often the rotator checks everything (on the leader)
	// and each replica re-reads its Secrets (default 10s).
	Interval time.Duration
	Log      logr.Logger
}

// Setup adds the rotator (on the leader only, when the manager elects one)
// and the file syncer (on every replica) to mgr.
func Setup(mgr manager.Manager, o Options) error {
	if err := o.Config.Validate(); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	kube, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	syncer := NewSyncer(kube, o.Config.Namespace, o.Files, o.Interval, o.Log.WithName("files"))
	rot := &Rotator{Client: kube, Config: o.Config, Log: o.Log.WithName("rotator"), Changed: syncer.Trigger}
	if err := mgr.Add(&loop{run: rot.Reconcile, interval: o.Interval, log: rot.Log, leader: true}); err != nil {
		return err
	}
	return mgr.Add(syncer)
}

// loop runs a reconcile at start and then every interval.
type loop struct {
	run      func(context.Context) error
	interval time.Duration
	log      logr.Logger
	leader   bool
}

func (l *loop) NeedLeaderElection() bool { return l.leader }

func (l *loop) Start(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	lastErr := ""
	for {
		if err := l.run(ctx); err != nil && ctx.Err() == nil {
			// Say it once per distinct error, not every interval.
			if err.Error() != lastErr {
				l.log.Error(err, "will retry", "every", l.interval.String())
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Syncer writes Secret keys to files on this replica (see WriteDir), so that
// every replica serves the current certificate seconds after it changes,
// without waiting for the kubelet's periodic Secret volume refresh (up to a
// minute or more), and before the first one exists.
type Syncer struct {
	client    kubernetes.Interface
	namespace string
	files     []FileSync
	interval  time.Duration
	log       logr.Logger
	trigger   chan struct{}
}

// NewSyncer syncs files from Secrets of namespace every interval.
func NewSyncer(client kubernetes.Interface, namespace string, files []FileSync, interval time.Duration, log logr.Logger) *Syncer {
	return &Syncer{client: client, namespace: namespace, files: files, interval: interval, log: log, trigger: make(chan struct{}, 1)}
}

// Trigger makes the syncer read the Secrets now.
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

func (s *Syncer) NeedLeaderElection() bool { return false }

func (s *Syncer) Start(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	waiting := map[string]bool{}
	for {
		for _, f := range s.files {
			err := s.sync(ctx, f)
			if err != nil && ctx.Err() == nil && !waiting[f.Secret] {
				s.log.Info("waiting for a certificate", "secret", f.Secret, "reason", err.Error())
			}
			waiting[f.Secret] = err != nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.trigger:
		}
	}
}

// Sync writes every FileSync once.
func (s *Syncer) Sync(ctx context.Context) error {
	for _, f := range s.files {
		if err := s.sync(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syncer) sync(ctx context.Context, f FileSync) error {
	sec, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, f.Secret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("the Secret %s/%s does not exist yet", s.namespace, f.Secret)
	}
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	for key, name := range f.Files {
		if len(sec.Data[key]) == 0 {
			return fmt.Errorf("the Secret %s/%s has no %s yet", s.namespace, f.Secret, key)
		}
		files[name] = sec.Data[key]
	}
	if c, k := sec.Data[KeyTLSCert], sec.Data[KeyTLSKey]; f.Files[KeyTLSCert] != "" && f.Files[KeyTLSKey] != "" {
		if _, err := pki.ParseKeyPair(c, k); err != nil {
			return fmt.Errorf("the Secret %s/%s: %w", s.namespace, f.Secret, err)
		}
	}
	wrote, err := WriteDir(f.Dir, files)
	if err != nil {
		return fmt.Errorf("write %s from Secret %s: %w", f.Dir, f.Secret, err)
	}
	if wrote {
		s.log.Info("files written", "secret", f.Secret, "dir", f.Dir)
	}
	return nil
}
