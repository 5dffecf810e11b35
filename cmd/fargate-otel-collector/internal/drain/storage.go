package drain

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// The drain needs to see two things that only the storage sees: the offsets
// file_log saves after each poll, and the state of the exporters' sending
// queues on disk. So the distribution's file_storage is the contrib one
// wrapped: each client it hands out is the real client, counting the
// checkpoints written through it. The drain reads the current values
// through the same clients (bbolt serves concurrent readers), so nothing
// upstream is changed and the on-disk format stays file_storage's own.

// Keys written by the components the drain follows (pinned versions:
// pkg/stanza/fileconsumer/internal/checkpoint, whose key the stanza
// pipeline prefixes with the operator's ID and a dot, and
// exporterhelper/internal/queue/persistent_queue.go at v0.159.0).
const (
	knownFilesKey    = "knownFiles"
	queueMetadataKey = "qmv0"
)

func isCheckpointKey(key string) bool {
	return key == knownFilesKey || strings.HasSuffix(key, "."+knownFilesKey)
}

// WrapStorage returns factory (file_storage) with its extensions watched.
// The type, config and stability are factory's own, so a config written for
// file_storage works unchanged.
func WrapStorage(factory extension.Factory) extension.Factory {
	return extension.NewFactory(factory.Type(), factory.CreateDefaultConfig,
		func(ctx context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			ext, err := factory.Create(ctx, set, cfg)
			if err != nil {
				return nil, err
			}
			st, ok := ext.(storage.Extension)
			if !ok {
				return nil, fmt.Errorf("%s is not a storage extension (%T)", set.ID, ext)
			}
			return &watchedStorage{Extension: st}, nil
		}, factory.Stability())
}

// watchedStorage is a storage extension whose clients are watched.
type watchedStorage struct {
	storage.Extension

	mu      sync.Mutex
	clients []*client
}

// live are the storages started and not shut down, in this process: the
// figures read the queues' sizes through them.
var live = struct {
	sync.Mutex
	storages map[*watchedStorage]bool
}{storages: map[*watchedStorage]bool{}}

func (s *watchedStorage) Start(ctx context.Context, host component.Host) error {
	if err := s.Extension.Start(ctx, host); err != nil {
		return err
	}
	live.Lock()
	live.storages[s] = true
	live.Unlock()
	return nil
}

func (s *watchedStorage) Shutdown(ctx context.Context) error {
	live.Lock()
	delete(live.storages, s)
	live.Unlock()
	return s.Extension.Shutdown(ctx)
}

// QueuedBytes is what every sending queue on disk holds now, in bytes (the
// queues' own count), over the storages of the running collector.
func QueuedBytes(ctx context.Context) int64 {
	live.Lock()
	storages := make([]*watchedStorage, 0, len(live.storages))
	for s := range live.storages {
		storages = append(storages, s)
	}
	live.Unlock()
	var total int64
	for _, s := range storages {
		for _, c := range s.openClients() {
			if !c.isQueue() {
				continue
			}
			raw, err := c.Get(ctx, queueMetadataKey)
			if err != nil {
				continue // closing: the next report counts it
			}
			if q, err := decodeQueue(raw); err == nil {
				total += q.Bytes
			}
		}
	}
	return total
}

func (s *watchedStorage) GetClient(ctx context.Context, kind component.Kind, id component.ID, name string) (storage.Client, error) {
	inner, err := s.Extension.GetClient(ctx, kind, id, name)
	if err != nil {
		return nil, err
	}
	c := &client{Client: inner, kind: kind, id: id, name: name}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	if w, ok := inner.(storage.Walker); ok {
		return &walkerClient{client: c, walker: w}, nil
	}
	return c, nil
}

// openClients are the clients not closed yet.
func (s *watchedStorage) openClients() []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		if !c.closed.Load() {
			out = append(out, c)
		}
	}
	return out
}

// client is one component's storage, with what the drain follows.
type client struct {
	storage.Client
	kind component.Kind
	id   component.ID
	name string

	// checkpoints counts the successful writes of file_log's offsets, under
	// checkpointKey.
	checkpoints   atomic.Int64
	checkpointKey atomic.Pointer[string]
	// lastWrite is when something was last written (unix nanoseconds).
	lastWrite atomic.Int64
	closed    atomic.Bool
}

func (c *client) Set(ctx context.Context, key string, value []byte) error {
	err := c.Client.Set(ctx, key, value)
	if err == nil {
		c.wrote(key)
	}
	return err
}

func (c *client) Delete(ctx context.Context, key string) error {
	err := c.Client.Delete(ctx, key)
	if err == nil {
		c.wrote(key)
	}
	return err
}

func (c *client) Batch(ctx context.Context, ops ...*storage.Operation) error {
	err := c.Client.Batch(ctx, ops...)
	if err == nil {
		for _, op := range ops {
			if op.Type != storage.Get {
				c.wrote(op.Key)
			}
		}
	}
	return err
}

func (c *client) Close(ctx context.Context) error {
	c.closed.Store(true)
	return c.Client.Close(ctx)
}

func (c *client) wrote(key string) {
	c.lastWrite.Store(time.Now().UnixNano())
	if isCheckpointKey(key) {
		if k := c.checkpointKey.Load(); k == nil || *k != key {
			c.checkpointKey.Store(&key)
		}
		c.checkpoints.Add(1)
	}
}

// walkerClient keeps storage.Walker for the clients that have it.
type walkerClient struct {
	*client
	walker storage.Walker
}

func (c *walkerClient) Walk(ctx context.Context, fn storage.WalkFunc) error {
	return c.walker.Walk(ctx, fn)
}

// isFileLog reports whether c is a file_log receiver's (its offsets).
func (c *client) isFileLog() bool {
	t := c.id.Type().String()
	return c.kind == component.KindReceiver && (t == "file_log" || t == "filelog")
}

// isQueue reports whether c is an exporter's sending queue.
func (c *client) isQueue() bool { return c.kind == component.KindExporter }

func (c *client) String() string {
	if c.name == "" {
		return c.id.String()
	}
	return c.id.String() + " (" + c.name + ")"
}
