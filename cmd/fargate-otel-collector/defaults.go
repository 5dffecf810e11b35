package main

import "go.opentelemetry.io/collector/featuregate"

// defaultGates are feature gates this distribution turns on by default; the
// --feature-gates flag still overrides them (e.g. -stanza.synchronousLogEmitter).
var defaultGates = []string{
	// file_log hands each batch of lines to the pipeline before it advances
	// the offsets it saves, instead of buffering them in memory for 100ms
	// after the offsets moved: a crash then cannot lose lines that were read
	// but not yet passed on.
	"stanza.synchronousLogEmitter",
}

func init() {
	for _, id := range defaultGates {
		if err := featuregate.GlobalRegistry().Set(id, true); err != nil {
			panic("fargate-otel-collector: default feature gate " + id + ": " + err.Error())
		}
	}
}
