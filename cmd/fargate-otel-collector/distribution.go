package main

import (
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain"
	"github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/stopbound"
)

// The generated components() is ocb's; this distribution adds what ocb
// cannot: the drain extension (internal/drain), file_storage watched so
// that the drain can follow file_log's offsets and the queues on disk, and
// kubelet_stats with a bounded shutdown (internal/stopbound: a scrape in
// flight must not hold the pod's shutdown past its grace period).

var (
	fileStorageType  = component.MustNewType("file_storage")
	kubeletStatsType = component.MustNewType("kubelet_stats")
)

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
		ks, ok := f.Receivers[kubeletStatsType]
		if !ok {
			return f, fmt.Errorf("the generated components lack %s: keep it in manifest.yaml", kubeletStatsType)
		}
		f.Receivers[kubeletStatsType] = stopbound.WrapMetrics(ks, stopbound.DefaultWait)
		f.Extensions[fileStorageType] = drain.WrapStorage(st)
		f.Extensions[drain.Type] = drain.NewFactory()
		if f.ExtensionModules == nil {
			f.ExtensionModules = map[component.Type]string{}
		}
		f.ExtensionModules[drain.Type] = "github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/drain (this distribution)"
		return f, nil
	}
}
