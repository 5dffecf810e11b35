package sidecarconfig

import (
	"maps"
	"strings"
	"time"
)

// Retries that fit the drain.
//
// A failed export waits for its retry: exporterhelper's backoff, by default
// 5 s growing to 30 s. When the pod ends meanwhile, the drain
// (DrainTimeout) can pass before the retry comes, and the request is
// dropped at shutdown although its destination is back: a Job whose
// sidecar saw the gateway's name fail to resolve for its first seconds lost
// those seconds' lines. So the OTLP exporters retry at least twice within
// the drain (at most every maxRetryInterval), unless the exporter's config
// paces its retries itself.
const maxRetryInterval = 5 * time.Second

// retrying are the exporter types that take retry_on_failure.
var retrying = map[string]bool{"otlp": true, "otlp_grpc": true, "otlphttp": true, "otlp_http": true}

// retryInterval is the longest wait between two retries of an export.
func (c Config) retryInterval() time.Duration {
	d := maxRetryInterval
	if c.DrainTimeout > 0 {
		d = min(d, c.DrainTimeout/2)
	}
	return max(d, time.Second)
}

// paceRetries gives an OTLP exporter's retry_on_failure an initial
// interval of 1 s and a maximum of retryInterval, when its config sets
// nothing of retry_on_failure but, perhaps, enabled.
func (c Config) paceRetries(id string, cfg map[string]any) map[string]any {
	typ, _, _ := strings.Cut(id, "/")
	if !retrying[typ] {
		return cfg
	}
	r := map[string]any{}
	if v, set := cfg["retry_on_failure"]; set {
		m, ok := v.(map[string]any)
		if !ok {
			return cfg
		}
		for k := range m {
			if k != "enabled" {
				return cfg
			}
		}
		r = maps.Clone(m)
	}
	r["initial_interval"] = "1s"
	r["max_interval"] = c.retryInterval().String()
	out := maps.Clone(cfg)
	out["retry_on_failure"] = r
	return out
}
