package gatewaytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/internal/otlpsink"
)

// The test's tail sampling waits 2s for a trace's spans (the chart's
// default is 10s) and its routing tier resolves the sampling Service every
// second (default 5s), so that a run takes seconds.
const (
	decisionWait     = "2s"
	resolverInterval = "1s"
)

// cluster is the replicas of one test and their sinks, by index.
type gatewayCluster struct {
	t        *testing.T
	dns      *DNS
	replicas []*Replica
	sinks    []*otlpsink.Sink
	values   func(sink string) map[string]any
}

func newGatewayCluster(t *testing.T, gateway map[string]any) *gatewayCluster {
	t.Helper()
	dns, err := StartDNS(nameserver+":53", SamplingHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	gateway["resolverInterval"] = resolverInterval
	return &gatewayCluster{t: t, dns: dns, values: func(sink string) map[string]any { return otlpValues(sink, gateway) }}
}

// scale starts replicas up to n, each added to the sampling Service's
// name once it is healthy, as a headless Service lists a pod once it is
// ready.
func (c *gatewayCluster) scale(ctx context.Context, n int) {
	c.t.Helper()
	for i := len(c.replicas); i < n; i++ {
		r, s := startReplica(ctx, c.t, i, c.values)
		c.replicas = append(c.replicas, r)
		c.sinks = append(c.sinks, s)
		var ips []string
		for _, r := range c.replicas {
			ips = append(ips, r.IP)
		}
		if err := c.dns.Set(ips...); err != nil {
			c.t.Fatal(err)
		}
	}
}

// waitBackends waits until the routing tier of every replica routes over n
// backends (the loadbalancing exporter's own metric): from then on, every
// replica hashes a trace ID onto the same one.
func (c *gatewayCluster) waitBackends(ctx context.Context, n int) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := poll(ctx, 30*time.Second, func(ctx context.Context) error {
		for _, r := range c.replicas {
			v, err := r.Metric(ctx, "otelcol_loadbalancer_num_backends")
			if err != nil {
				return err
			}
			if int(v) != n {
				return fmt.Errorf("%s routes over %v backends, want %d", r.Name, v, n)
			}
		}
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return time.Since(start)
}

func (c *gatewayCluster) targets() []string {
	var out []string
	for _, r := range c.replicas {
		out = append(out, r.OTLP())
	}
	return out
}

// waitSpans waits until the sinks together hold n spans of the plan.
func (c *gatewayCluster) waitSpans(ctx context.Context, n int) map[int]*arrival {
	c.t.Helper()
	var got map[int]*arrival
	if err := poll(ctx, 60*time.Second, func(context.Context) error {
		var total int
		got, total = arrivals(c.sinks)
		if total < n {
			return fmt.Errorf("%d of %d spans arrived", total, n)
		}
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return got
}

// TestTraceIDRouting: three replicas of the chart's gateway, twenty pods
// sending 2,000 traces whose five spans each come from five different pods
// through different replicas: every trace's spans are sampled (and
// exported) by exactly one replica. Then the gateway scales to four: every
// trace that starts after all replicas route over four backends lands whole
// on one replica, the new one taking its share; the traces in flight at the
// change are counted and printed.
func TestTraceIDRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Keep every trace, so that where each span went is seen.
	c := newGatewayCluster(t, map[string]any{"tailSampling": map[string]any{
		"decisionWait": decisionWait,
		"policies":     []map[string]any{{"name": "all", "type": "always_sample"}},
	}})
	c.scale(ctx, 3)
	c.waitBackends(ctx, 3)
	ps := dialPods(t, c.targets())

	const (
		before   = 2000 // traces sent whole with three replicas
		inFlight = 200  // traces that straddle the change
		after    = 1000 // traces started after the change
	)
	pl := newPlan(before + inFlight + after)
	ps.send(ctx, t, pl, 0, before, 0, spansPerTrace)
	// The traces in flight: their first three spans now, the rest after
	// the change.
	ps.send(ctx, t, pl, before, before+inFlight, 0, 3)

	got := c.waitSpans(ctx, before*spansPerTrace+inFlight*3)
	perReplica := make([]int, 3)
	for tr := 0; tr < before; tr++ {
		if a := got[tr]; a != nil && len(a.replicas) == 1 {
			for r := range a.replicas {
				perReplica[r]++
			}
		}
	}
	if bad, ex := describe(got, 0, before, func(a *arrival) bool { return a.whole() && len(a.replicas) == 1 }); bad > 0 {
		t.Fatalf("%d of %d traces did not arrive whole from exactly one replica (%s)", bad, before, ex)
	}
	for r, n := range perReplica {
		if n == 0 {
			t.Errorf("replica %d sampled none of the %d traces (per replica: %v)", r, before, perReplica)
		}
	}
	t.Logf("three replicas: %d traces of %d spans from %d pods, each whole on one replica; per replica %v", before, spansPerTrace, numPods, perReplica)

	// Scale to four: the new replica is ready, the Service's name answers
	// with it, and every replica's routing tier has taken it in.
	c.scale(ctx, 4)
	took := c.waitBackends(ctx, 4)
	t.Logf("scaled to 4: every routing tier had the new backend %s after the name changed", took.Round(10*time.Millisecond))
	// Sidecars reconnect over time (the gateway ages connections), so the
	// new replica also receives spans from pods.
	ps.redial(t, c.targets())
	ps.send(ctx, t, pl, before, before+inFlight, 3, spansPerTrace)
	ps.send(ctx, t, pl, before+inFlight, len(pl), 0, spansPerTrace)

	got = c.waitSpans(ctx, len(pl)*spansPerTrace)
	if bad, ex := describe(got, before+inFlight, len(pl), func(a *arrival) bool { return a.whole() && len(a.replicas) == 1 }); bad > 0 {
		t.Fatalf("%d of %d traces started after the change did not arrive whole from exactly one replica (%s)", bad, after, ex)
	}
	onNew := 0
	for tr := before + inFlight; tr < len(pl); tr++ {
		if got[tr].replicas[3] {
			onNew++
		}
	}
	// Consistent hashing gives the new replica about a quarter.
	if onNew < after/10 {
		t.Errorf("the new replica sampled %d of the %d traces started after the change, want about a quarter", onNew, after)
	}
	split, lost := 0, 0
	for tr := before; tr < before+inFlight; tr++ {
		a := got[tr]
		if len(a.replicas) > 1 {
			split++
		}
		if !a.whole() {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d traces in flight at the change lost or repeated spans", lost)
	}
	t.Logf("after the change: %d traces, each whole on one replica, %d (%.0f%%) on the new one", after, onNew, 100*float64(onNew)/after)
	t.Logf("in flight at the change: %d of %d traces split across two replicas (their later spans hash to the new replica; no span lost)", split, inFlight)
}

// TestTailSamplingKeepsWholeTraces: with the chart's default policy (every
// trace with an error, and 10 % of the others) on three replicas, 2,000
// traces from twenty pods: each trace is decided once, by one replica; every
// error trace is kept; about 10 % of the others are; and what is kept is
// whole traces only.
func TestTailSamplingKeepsWholeTraces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newGatewayCluster(t, map[string]any{"tailSampling": map[string]any{"decisionWait": decisionWait}})
	c.scale(ctx, 3)
	c.waitBackends(ctx, 3)
	ps := dialPods(t, c.targets())
	const traces = 2000
	pl := newPlan(traces)
	ps.send(ctx, t, pl, 0, traces, 0, spansPerTrace)

	// Every trace decided: the replicas' decision counters add up to the
	// number of traces (a split trace would be decided twice).
	const decided = "otelcol_processor_tail_sampling_global_count_traces_sampled"
	var kept float64
	if err := poll(ctx, 60*time.Second, func(ctx context.Context) error {
		var all float64
		kept = 0
		for _, r := range c.replicas {
			a, err := r.Metric(ctx, decided)
			if err != nil {
				return err
			}
			k, err := r.Metric(ctx, decided, `sampled="true"`)
			if err != nil {
				return err
			}
			all += a
			kept += k
		}
		if all < traces {
			return fmt.Errorf("%v of %d traces decided", all, traces)
		}
		if all > traces {
			return fmt.Errorf("%v decisions for %d traces: some trace was decided on two replicas", all, traces)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := c.waitSpans(ctx, int(kept)*spansPerTrace)
	var errorsKept, othersKept, others int
	for tr := 0; tr < traces; tr++ {
		a := got[tr]
		if !isError(tr) {
			others++
		}
		if a == nil {
			continue
		}
		if !a.whole() || len(a.replicas) != 1 {
			t.Errorf("trace %d kept in part: spans %v on replicas %v", tr, a.spans, a.replicas)
		}
		if isError(tr) {
			errorsKept++
		} else {
			othersKept++
		}
	}
	if errorsKept != traces/10 {
		t.Errorf("%d of the %d traces with an error kept, want all", errorsKept, traces/10)
	}
	ratio := float64(othersKept) / float64(others)
	// 10 % of 1,800 by trace ID hash: 180 expected, sd about 13.
	if ratio < 0.05 || ratio > 0.15 {
		t.Errorf("%d of %d traces without an error kept (%.1f%%), want about 10%%", othersKept, others, 100*ratio)
	}
	if len(got) != int(kept) {
		t.Errorf("%d traces arrived, the replicas kept %v", len(got), kept)
	}
	t.Logf("errors plus 10%%: %d of %d error traces and %d of %d others (%.1f%%) kept, every one whole on one replica", errorsKept, traces/10, othersKept, others, 100*ratio)
}
