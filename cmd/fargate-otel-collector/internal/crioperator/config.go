// Package crioperator is the file_log operator `container_cri`: it turns
// the lines of CRI log files (containerd's format, what fargate-otel-tee
// writes) into the records that the upstream `container` operator
// (format containerd, add_metadata_from_filepath) makes of them, at a
// fraction of its CPU:
//
//   - a line is split by hand, not by a regular expression, and its time
//     is read without time.Parse when it has the form containerd writes;
//   - the k8s.* attributes a path gives are worked out once per path (a
//     bounded cache), not with a backtracking expression for every line;
//   - a complete line (tag F) with nothing pending goes on as it is: no
//     expression is run to tell its tag, and its text is not copied.
//
// P pieces are joined until their F as upstream joins them (the first
// piece's record, its time and attributes, with the texts joined, up to
// max_log_size), with one deliberate difference: pieces are kept apart by
// file path and stream, where upstream keys by path alone and so joins a
// stdout piece with the stderr line that the app happened to write
// between two pieces of a long stdout line. A piece still waiting after
// force_flush_period goes on alone, as upstream's, so a last line without
// a newline is not held; Stop sends what waits, and never waits for it
// longer than a bound (upstream's Stop takes a lock that a blocked flush
// holds).
package crioperator

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/stanza/operator/helper"
)

// Type is the operator's type in a file_log config.
const Type = "container_cri"

const (
	// The upstream container operator's limits: its recombine joins at
	// most 1 MiB, flushes a piece left alone after 5 s (recombine's
	// default force_flush_period) and keeps at most 1,000 sources.
	defaultMaxLogSize       = 1 << 20
	defaultForceFlushPeriod = 5 * time.Second
	defaultMaxSources       = 1000
	// How many paths the metadata cache keeps before it starts over.
	pathCacheSize = 1024
	// How long Stop may wait to send the pieces still waiting.
	defaultStopWait = 2 * time.Second
)

func init() {
	operator.Register(Type, func() operator.Builder { return NewConfig() })
}

// Config is the operator's configuration.
type Config struct {
	helper.TransformerConfig `mapstructure:",squash"`

	// AddMetadataFromFilePath sets k8s.namespace.name, k8s.pod.name,
	// k8s.pod.uid, k8s.container.name and k8s.container.restart_count
	// from log.file.path (file_log's include_file_path: true).
	AddMetadataFromFilePath bool `mapstructure:"add_metadata_from_filepath"`
	// MaxLogSize ends a line joined from P pieces once its text is longer
	// (0: no limit).
	MaxLogSize helper.ByteSize `mapstructure:"max_log_size,omitempty"`
	// ForceFlushPeriod sends a piece that has waited so long for its F.
	ForceFlushPeriod time.Duration `mapstructure:"force_flush_period"`
	// MaxSources bounds the (path, stream) pairs with a piece waiting;
	// past it, every waiting piece is sent.
	MaxSources int `mapstructure:"max_sources"`
}

// NewConfig returns the defaults, those of the upstream container operator.
func NewConfig() *Config {
	return NewConfigWithID(Type)
}

// NewConfigWithID returns the defaults with the given operator id.
func NewConfigWithID(id string) *Config {
	return &Config{
		TransformerConfig:       helper.NewTransformerConfig(id, Type),
		AddMetadataFromFilePath: true,
		MaxLogSize:              defaultMaxLogSize,
		ForceFlushPeriod:        defaultForceFlushPeriod,
		MaxSources:              defaultMaxSources,
	}
}

// Build makes the operator.
func (c Config) Build(set component.TelemetrySettings) (operator.Operator, error) {
	t, err := c.TransformerConfig.Build(set)
	if err != nil {
		return nil, err
	}
	var errs []error
	if c.MaxLogSize < 0 {
		errs = append(errs, fmt.Errorf("max_log_size is %d: give a size of 0 (no limit) or more, e.g. 1MiB", c.MaxLogSize))
	}
	if c.ForceFlushPeriod <= 0 {
		errs = append(errs, fmt.Errorf("force_flush_period is %s: give a positive duration, e.g. 5s", c.ForceFlushPeriod))
	}
	if c.MaxSources <= 0 {
		errs = append(errs, fmt.Errorf("max_sources is %d: give a positive number, e.g. 1000", c.MaxSources))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("operator %s (%s): %w", c.ID(), Type, err)
	}
	return &Operator{
		TransformerOperator: t,
		addMeta:             c.AddMetadataFromFilePath,
		maxLogSize:          int(c.MaxLogSize),
		flushPeriod:         c.ForceFlushPeriod,
		maxSources:          c.MaxSources,
		stopWait:            defaultStopWait,
		paths:               newPathCache(pathCacheSize),
		pending:             make(map[source]*partial),
		writing:             make(chan struct{}, 1),
		done:                make(chan struct{}),
	}, nil
}
