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
	// unlisted are the replicas taken out of the Service's name, stopped
	// those that were stopped (both by index).
	unlisted, stopped map[int]bool
}

func newGatewayCluster(t *testing.T, gateway map[string]any) *gatewayCluster {
	t.Helper()
	dns, err := StartDNS(nameserver+":53", SamplingHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	gateway["resolverInterval"] = resolverInterval
	return &gatewayCluster{t: t, dns: dns, values: func(sink string) map[string]any { return otlpValues(sink, gateway) },
		unlisted: map[int]bool{}, stopped: map[int]bool{}}
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
		c.publish()
	}
}

// publish makes the Service's name answer with the listed replicas.
func (c *gatewayCluster) publish() {
	c.t.Helper()
	var ips []string
	for i, r := range c.replicas {
		if !c.unlisted[i] {
			ips = append(ips, r.IP)
		}
	}
	if err := c.dns.Set(ips...); err != nil {
		c.t.Fatal(err)
	}
}

// unlist takes replica i out of the sampling Service's name, as the
// endpoints controller does once its pod is terminating. It keeps running
// and receiving (its preStop sleep) until stop.
func (c *gatewayCluster) unlist(i int) {
	c.t.Helper()
	c.unlisted[i] = true
	c.publish()
}

// stop sends replica i SIGTERM, as the kubelet does after the preStop
// sleep, and waits until it has exited: its receivers stop, its pending
// traces are decided and its queues drain.
func (c *gatewayCluster) stop(i int) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := c.replicas[i].Stop(30 * time.Second); err != nil {
		c.t.Fatalf("%s on SIGTERM: %v\n%s", c.replicas[i].Name, err, Tail(c.replicas[i].Logs(), 30))
	}
	c.stopped[i] = true
	return time.Since(start)
}

// waitBackends waits until the routing tier of every running replica
// (an unlisted one too: it still receives from the pods connected to it)
// routes over n backends (the loadbalancing exporter's own metric): from
// then on, every replica hashes a trace ID onto the same one.
func (c *gatewayCluster) waitBackends(ctx context.Context, n int) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := poll(ctx, 30*time.Second, func(ctx context.Context) error {
		for i, r := range c.replicas {
			if c.stopped[i] {
				continue
			}
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

// targets are the OTLP addresses of the listed replicas, those a pod
// connects to through the Service.
func (c *gatewayCluster) targets() []string {
	var out []string
	for i, r := range c.replicas {
		if !c.unlisted[i] {
			out = append(out, r.OTLP())
		}
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
// on one replica, the new one taking its share. Then it scales back to
// three, one of the first replicas going as a pod of a scale-down does
// (out of the Service's name while it still runs and receives, then
// SIGTERM): every trace that starts after the others route over three
// backends lands whole on one of the three that stay. The traces in flight
// at each change are counted and printed.
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
		inFlight = 200  // traces that straddle a change
		after    = 1000 // traces started after a change
	)
	// The plan's traces by index: [0, up) before the scale-up (the last
	// inFlight of them straddle it), [up, down) after it, [down,
	// downAfter) straddle the scale-down, [downAfter, end) after it.
	const (
		up        = before + inFlight
		down      = up + after
		downAfter = down + inFlight
	)
	pl := newPlan(downAfter + after)
	ps.send(ctx, t, pl, 0, before, 0, spansPerTrace)
	// The traces in flight: their first three spans now, the rest after
	// the change.
	ps.send(ctx, t, pl, before, up, 0, 3)

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
	ps.send(ctx, t, pl, before, up, 3, spansPerTrace)
	ps.send(ctx, t, pl, up, down, 0, spansPerTrace)

	got = c.waitSpans(ctx, down*spansPerTrace)
	if bad, ex := describe(got, up, down, func(a *arrival) bool { return a.whole() && len(a.replicas) == 1 }); bad > 0 {
		t.Fatalf("%d of %d traces started after the change did not arrive whole from exactly one replica (%s)", bad, after, ex)
	}
	onNew := 0
	for tr := up; tr < down; tr++ {
		if got[tr].replicas[3] {
			onNew++
		}
	}
	// Consistent hashing gives the new replica about a quarter.
	if onNew < after/10 {
		t.Errorf("the new replica sampled %d of the %d traces started after the change, want about a quarter", onNew, after)
	}
	split, lost := 0, 0
	for tr := before; tr < up; tr++ {
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

	// Scale back to three. The ReplicaSet's choice is one of the first
	// three, so that traces it has owned since the start move. The traces
	// in flight have their first three spans sampled with four backends.
	const gone = 1
	ps.send(ctx, t, pl, down, downAfter, 0, 3)
	// The pod is terminating: out of the Service's name, while it sleeps
	// (preStop) and its receivers still take what the pods connected to
	// it send; every routing tier, its own too, drops it from the ring.
	c.unlist(gone)
	took = c.waitBackends(ctx, 3)
	t.Logf("scaled to 3: every routing tier had dropped %s %s after the name changed", c.replicas[gone].Name, took.Round(10*time.Millisecond))
	ps.send(ctx, t, pl, down, downAfter, 3, spansPerTrace)
	ps.send(ctx, t, pl, downAfter, len(pl), 0, spansPerTrace)
	// What the leaving replica exported of the traces in flight before its
	// SIGTERM; the rest of its pending traces are decided on shutdown.
	beforeStop, _ := arrivals(c.sinks[gone : gone+1])
	stopped := c.stop(gone)
	got = c.waitSpans(ctx, len(pl)*spansPerTrace)
	perReplica = make([]int, 4)
	for tr := downAfter; tr < len(pl); tr++ {
		if a := got[tr]; a != nil && len(a.replicas) == 1 {
			for r := range a.replicas {
				perReplica[r]++
			}
		}
	}
	if bad, ex := describe(got, downAfter, len(pl), func(a *arrival) bool { return a.whole() && len(a.replicas) == 1 }); bad > 0 {
		t.Fatalf("%d of %d traces started after the removal did not arrive whole from exactly one replica (%s)", bad, after, ex)
	}
	for r, n := range perReplica {
		switch {
		case r == gone && n > 0:
			t.Errorf("the removed replica %d sampled %d of the %d traces started after its removal (per replica: %v)", r, n, after, perReplica)
		case r != gone && n < after/10:
			t.Errorf("replica %d sampled %d of the %d traces started after the removal, want about a third (per replica: %v)", r, n, after, perReplica)
		}
	}
	t.Logf("after the removal: %d traces, each whole on one replica; per replica %v (replica %d removed)", after, perReplica, gone)

	// In flight at the removal: a trace whose first spans the leaving
	// replica held is split (its later spans hash to another); the others
	// stay whole where they were (consistent hashing moves only the
	// leaving replica's share).
	var owned, splitGone, atShutdown int
	lost = 0
	for tr := down; tr < downAfter; tr++ {
		a := got[tr]
		if !a.whole() {
			lost++
		}
		if !a.replicas[gone] {
			if len(a.replicas) != 1 {
				t.Errorf("trace %d in flight at the removal, not on the removed replica, split: spans %v on replicas %v", tr, a.spans, a.replicas)
			}
			continue
		}
		owned++
		if len(a.replicas) > 1 {
			splitGone++
		}
		if b := beforeStop[tr]; b == nil {
			atShutdown++
		}
	}
	if lost > 0 {
		t.Errorf("%d traces in flight at the removal lost or repeated spans", lost)
	}
	t.Logf("in flight at the removal: %d of %d traces had their first spans on the removed replica, %d of them split (their later spans on the replicas that took over its share), %d decided only on SIGTERM (stopped in %s); %d traces with spans lost or repeated; the other %d whole where they were",
		owned, inFlight, splitGone, atShutdown, stopped.Round(10*time.Millisecond), lost, inFlight-owned)
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
