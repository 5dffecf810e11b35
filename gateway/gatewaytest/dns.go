package gatewaytest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a small DNS server (UDP) that answers A queries for one name with
// a set of addresses the test changes, as a headless Service's name
// answers with the addresses of its ready pods: the loadbalancing
// exporter's DNS resolver then finds replicas come and go. AAAA queries for
// the name get an empty answer, every other name NXDOMAIN.
type DNS struct {
	name string
	conn net.PacketConn

	mu      sync.Mutex
	addrs   []netip.Addr
	queries int
	done    chan struct{}
}

// StartDNS serves name on addr (e.g. 127.0.0.1:53).
func StartDNS(addr, name string) (*DNS, error) {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("the test's DNS server on %s: %w", addr, err)
	}
	d := &DNS{name: strings.ToLower(strings.TrimSuffix(name, ".")) + ".", conn: conn, done: make(chan struct{})}
	go d.serve()
	return d, nil
}

// Addr is the server's address.
func (d *DNS) Addr() string { return d.conn.LocalAddr().String() }

// Set replaces the addresses the name resolves to.
func (d *DNS) Set(ips ...string) error {
	addrs := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			return fmt.Errorf("DNS answer %q: want an IPv4 address", ip)
		}
		addrs = append(addrs, a)
	}
	d.mu.Lock()
	d.addrs = addrs
	d.mu.Unlock()
	return nil
}

// Queries is how many queries for the name were answered.
func (d *DNS) Queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// Close stops the server.
func (d *DNS) Close() {
	_ = d.conn.Close()
	<-d.done
}

func (d *DNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		resp, err := d.answer(buf[:n])
		if err != nil {
			continue
		}
		_, _ = d.conn.WriteTo(resp, from)
	}
}

// answer builds the response to one query message.
func (d *DNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeSuccess}
	ours := strings.EqualFold(q.Name.String(), d.name)
	if !ours {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if ours && q.Type == dnsmessage.TypeA {
		d.mu.Lock()
		addrs := append([]netip.Addr(nil), d.addrs...)
		d.queries++
		d.mu.Unlock()
		for _, a := range addrs {
			// TTL 0: a headless Service's records are short-lived too.
			rr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 0}
			if err := b.AResource(rr, dnsmessage.AResource{A: a.As4()}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}
