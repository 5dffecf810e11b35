//go:build !windows && noagent

package main

import (
	"log/slog"

	"go.opentelemetry.io/collector/component"
)

// newFleet: a build without the fleet agent (the tag noagent, the
// reference make bench-collector measures the agent against).
func newFleet(*slog.Logger, component.BuildInfo, []string) fleet { return nil }
