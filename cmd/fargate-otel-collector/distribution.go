package main

import (
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
)

// The generated components() is ocb's; this distribution adds what ocb
// cannot: the drain extension (internal/drain), and file_storage watched so
// that the drain can follow file_log's offsets and the queues on disk.

var fileStorageType = component.MustNewType("file_storage")

// withDistribution returns gen's factories with this distribution's own.
func withDistribution(gen func() (otelcol.Factories, error)) func() (otelcol.Factories, error) {
	return func() (otelcol.Factories, error) {
		f, err := gen()
		if err != nil {
			return f, err
		}
		st, ok := f.Extensions[fileStorageType]
		if !ok {
			return f, fmt.Errorf("the generated components lack %s, which the drain extension watches: keep it in manifest.yaml", fileStorageType)
		}
		f.Extensions[fileStorageType] = drain.WrapStorage(st)
		f.Extensions[drain.Type] = drain.NewFactory()
		if f.ExtensionModules == nil {
			f.ExtensionModules = map[component.Type]string{}
		}
		f.ExtensionModules[drain.Type] = "github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain (this distribution)"
		return f, nil
	}
}
