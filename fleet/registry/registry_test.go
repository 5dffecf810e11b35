package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBoundsPerAgent(t *testing.T) {
	r := New(Options{Replica: "r0", Version: "0.1.0"})
	conn := new(int)
	r.Connect(Identity{UID: "u1", Namespace: "ns", Pod: "p"}, conn)
	long := strings.Repeat("x", 10000)
	r.SetDescription("u1", conn, Description{Node: long, CollectorVersion: long})
	r.SetRemoteStatus("u1", conn, long, "FAILED", long)
	r.SetEffectiveConfig("u1", conn, long+long)
	a, _ := r.Get("u1")
	if len(a.Node) > MaxValueLen+4 || len(a.RemoteConfig.Error) > MaxErrorLen+4 || len(a.RemoteConfig.Last) > 132 {
		t.Errorf("not capped: node %d, error %d, hash %d", len(a.Node), len(a.RemoteConfig.Error), len(a.RemoteConfig.Last))
	}
	cfg, _ := r.EffectiveConfig("u1")
	if len(cfg) > MaxConfigLen+64 || !strings.Contains(cfg, "truncated") {
		t.Errorf("effective config of %d bytes", len(cfg))
	}
	many := map[string]*protobufs.ComponentHealth{}
	for i := range 100 {
		many[strings.Repeat("c", i+1)] = &protobufs.ComponentHealth{Healthy: false, LastError: long}
	}
	h := HealthFrom(&protobufs.ComponentHealth{Healthy: false, LastError: long, ComponentHealthMap: many})
	if len(h.Unhealthy) != MaxUnhealthy || len(h.LastError) > MaxErrorLen+4 {
		t.Errorf("health keeps %d components, error of %d", len(h.Unhealthy), len(h.LastError))
	}
	for i := range 100 {
		r.AddFigures("u1", conn, FiguresReport{LinesRead: map[string]int64{"a": int64(i)}})
	}
	if r.agents["u1"].ring.n != FiguresRingSize {
		t.Errorf("ring holds %d", r.agents["u1"].ring.n)
	}
}

func TestEffectiveConfigsAreShared(t *testing.T) {
	r := New(Options{})
	for _, uid := range []string{"a", "b", "c"} {
		c := new(int)
		r.Connect(Identity{UID: uid}, c)
		r.SetEffectiveConfig(uid, c, "same config")
	}
	if n := r.DistinctConfigs(); n != 1 {
		t.Errorf("%d distinct configs kept for three agents running one", n)
	}
	c := r.Conn("a")
	r.SetEffectiveConfig("a", c, "other")
	if n := r.DistinctConfigs(); n != 2 {
		t.Errorf("%d distinct configs", n)
	}
}

func TestRates(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r := New(Options{Now: clk.now})
	c := new(int)
	r.Connect(Identity{UID: "u"}, c)
	for _, s := range []struct {
		lines, dropped int64
	}{{100, 0}, {400, 0}, {50, 2}} { // the last: the sidecar restarted
		r.AddFigures("u", c, FiguresReport{LinesRead: map[string]int64{"app/stdout": s.lines}, WrapperDropped: map[string]int64{"app": s.dropped}})
		clk.t = clk.t.Add(30 * time.Second)
	}
	a, _ := r.Get("u")
	// 300 then 50 lines (counter reset) over 60s.
	if got := a.Figures.LinesPerSecond; got < 5.8 || got > 5.9 {
		t.Errorf("lines/s %v, want 350/60", got)
	}
	if a.Figures.DropsPerSecond <= 0 || !a.Dropping() {
		t.Errorf("drops %+v", a.Figures)
	}
}

func TestStaleAndReplacedConnections(t *testing.T) {
	r := New(Options{Version: "0.2.0"})
	c1, c2 := new(int), new(int)
	r.Connect(Identity{UID: "u"}, c1)
	r.SetDescription("u", c1, Description{CollectorVersion: "0.1.0"})
	r.SetDesired("u", "h1", "")
	r.SetRemoteStatus("u", c1, "h0", "APPLIED", "")
	a, _ := r.Get("u")
	if strings.Join(a.Stale, ",") != api.StaleVersion+","+api.StaleConfig {
		t.Errorf("stale %v", a.Stale)
	}
	if prev := r.Connect(Identity{UID: "u"}, c2); prev != c1 {
		t.Errorf("the replaced connection is %v", prev)
	}
	r.Disconnect("u", c1) // the old one closing late changes nothing
	if a, _ := r.Get("u"); !a.Connected {
		t.Error("a late close of the replaced connection disconnected the agent")
	}
	r.SetHealth("u", c1, api.Health{Reported: true}) // nor do its messages
	if a, _ := r.Get("u"); a.Health.Reported {
		t.Error("the replaced connection updated the agent")
	}
}

func TestSweep(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r := New(Options{Now: clk.now, KeepDisconnected: time.Minute})
	c := new(int)
	r.Connect(Identity{UID: "u"}, c)
	r.SetEffectiveConfig("u", c, "cfg")
	r.Disconnect("u", c)
	clk.t = clk.t.Add(30 * time.Second)
	if r.Sweep() != 0 {
		t.Error("swept too early")
	}
	clk.t = clk.t.Add(time.Minute)
	if r.Sweep() != 1 || r.DistinctConfigs() != 0 {
		t.Errorf("not swept: %d configs", r.DistinctConfigs())
	}
}

func TestKindAndLastExports(t *testing.T) {
	r := New(Options{})
	c := new(int)
	r.Connect(Identity{UID: "s"}, c)
	r.Connect(Identity{UID: "g", Kind: api.KindGateway}, c)
	if a, _ := r.Get("s"); a.Kind != api.KindSidecar {
		t.Errorf("an agent of no kind is %q, want a sidecar", a.Kind)
	}
	if a, _ := r.Get("g"); a.Kind != api.KindGateway {
		t.Errorf("kind %q", a.Kind)
	}
	t1 := "2026-12-04T10:00:00.5Z"
	r.AddFigures("g", c, FiguresReport{LastExport: map[string]string{"traces": t1, "logs": "", "other": t1, "metrics": "not a time"}})
	a, _ := r.Get("g")
	if len(a.Figures.LastExport) != 1 || a.Figures.LastExport["traces"].Format(time.RFC3339Nano) != t1 {
		t.Fatalf("last exports %v, want traces at %s only", a.Figures.LastExport, t1)
	}
	// A restarted agent that has not exported yet does not erase it; a
	// later export replaces it.
	r.AddFigures("g", c, FiguresReport{LastExport: map[string]string{"traces": ""}})
	r.AddFigures("g", c, FiguresReport{LastExport: map[string]string{"logs": "2026-12-04T10:00:01Z"}})
	a, _ = r.Get("g")
	if a.Figures.LastExport["traces"].Format(time.RFC3339Nano) != t1 || a.Figures.LastExport["logs"].IsZero() {
		t.Fatalf("last exports %v", a.Figures.LastExport)
	}
}
