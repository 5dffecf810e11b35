package clustertest

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/fleettest"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/server"
)

// testFiguresAtReconnect: the sidecar's agent sends its figures as soon as
// it connects; after a reconnect that is before it said who it is again
// (the server asks for its full state, which has no figures). They are
// kept, not dropped: the view's figures do not wait for the next
// heartbeat (30 s) after every reconnect, found by the e2e when every
// fleet server was restarted.
func testFiguresAtReconnect(t *testing.T, e *env, r *replica) {
	fwd := forward(t, r.addrs.OpAMP)
	p := e.pod("reconnect", "web-0", "app")
	var agent *fleettest.Agent
	started := make(chan struct{})
	var connects atomic.Int64
	sent := make(chan error, 4)
	a := e.agentFor(r, p, e.token(p, server.Audience), func(o *fleettest.AgentOptions) {
		o.URL = "wss://" + fwd.addr + "/v1/opamp"
		// As the sidecar's agent does (fleetagent/agent onConnect): the
		// figures at once, here totals of 100 lines per connect.
		o.OnConnect = func() {
			n := connects.Add(1)
			go func() {
				<-started // the first connect may come before Start returns
				sent <- agent.SendFigures(registry.FiguresReport{LinesRead: map[string]int64{"app/stdout": 100 * n}})
			}()
		}
	})
	agent = a
	close(started)
	waitFigures := func(want int64) {
		t.Helper()
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		waitAgent(t, r, string(p.UID), fmt.Sprintf("figures of %d lines", want), func(a api.Agent) error {
			if !a.Connected || a.Figures.LinesRead != want {
				return fmt.Errorf("connected %v, figures %+v", a.Connected, a.Figures)
			}
			return nil
		})
	}
	waitFigures(100)
	fwd.cut() // the connection is lost; the agent reconnects
	waitFigures(200)
}

// forwarder passes TCP connections on to a replica, and can cut them all.
type forwarder struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func forward(t *testing.T, to string) *forwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	f := &forwarder{addr: l.Addr().String()}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				_ = in.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, in, out)
			f.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(f.cut)
	return f
}

func (f *forwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}
