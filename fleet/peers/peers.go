// Package peers merges the fleet server replicas' views. Replicas share no
// state: each knows the agents connected to it. A replica asked for the
// whole fleet finds the others in the EndpointSlices of the fleet's
// headless Service (release namespace) and reads their agents over TLS on
// their OpAMP port, presenting its own projected service account token;
// a replica answers such a read only for a token of the fleet server's own
// service account in its own namespace (Authorize).
package peers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

// Peers reads the other replicas.
type Peers struct {
	o    Options
	kube kubernetes.Interface
}

// Options of New.
type Options struct {
	// Namespace and Service: the headless Service whose EndpointSlices list
	// the replicas (kubernetes.io/service-name label).
	Namespace, Service string
	// PortName is the EndpointSlice port to use (default "opamp").
	PortName string
	// Self is this replica's pod name (skipped: its view is local).
	Self string
	// ServerName is the DNS name the peers' certificates hold (the agents'
	// Service name, e.g. fargate-otel-fleet.fargate-otel.svc).
	ServerName string
	// CAFile verifies the peers' certificates; TokenFile is this replica's
	// projected token, re-read for every request (the kubelet rotates it).
	CAFile, TokenFile string
	// Timeout bounds the read of one peer (default 5s).
	Timeout time.Duration
}

// New returns peers found with kube.
func New(kube kubernetes.Interface, o Options) *Peers {
	if o.PortName == "" {
		o.PortName = "opamp"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return &Peers{o: o, kube: kube}
}

// Endpoint is one other replica.
type Endpoint struct {
	Name, Address string
}

// Discover lists the ready replicas other than this one.
func (p *Peers) Discover(ctx context.Context) ([]Endpoint, error) {
	slices, err := p.kube.DiscoveryV1().EndpointSlices(p.o.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + p.o.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("list the fleet server replicas (EndpointSlices of Service %s/%s): %w", p.o.Namespace, p.o.Service, err)
	}
	seen := map[string]bool{}
	var out []Endpoint
	for _, s := range slices.Items {
		port := int32(0)
		for _, pt := range s.Ports {
			if pt.Name != nil && *pt.Name == p.o.PortName && pt.Port != nil {
				port = *pt.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready || len(e.Addresses) == 0 {
				continue
			}
			name := e.Addresses[0]
			if e.TargetRef != nil {
				name = e.TargetRef.Name
			}
			if name == p.o.Self || seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, Endpoint{Name: name, Address: net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port)))})
		}
	}
	return out, nil
}

// Fetch reads every peer's agents at once. A peer that cannot be read is
// listed with its error: the view is then partial, and says so.
func (p *Peers) Fetch(ctx context.Context) ([]api.Replica, [][]api.Agent, error) {
	eps, err := p.Discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	client, err := p.client()
	if err != nil {
		return nil, nil, err
	}
	replicas := make([]api.Replica, len(eps))
	lists := make([][]api.Agent, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			replicas[i] = api.Replica{Name: ep.Name, Address: ep.Address}
			l, err := p.fetch(ctx, client, ep)
			if err != nil {
				replicas[i].Error = err.Error()
				return
			}
			replicas[i].Agents = len(l.Agents)
			lists[i] = l.Agents
		})
	}
	wg.Wait()
	return replicas, lists, nil
}

func (p *Peers) client() (*http.Client, error) {
	pem, err := os.ReadFile(p.o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("the fleet CA to verify peers: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", p.o.CAFile)
	}
	return &http.Client{Timeout: p.o.Timeout, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: p.o.ServerName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}, nil
}

// fetch reads one peer's agents. A peer that cannot review this replica's
// token now (its review rate limit, spent by unknown tokens from this
// address) says when to ask again: within the read's budget, ask once more
// then, since once reviewed the token stays cached there.
func (p *Peers) fetch(ctx context.Context, c *http.Client, ep Endpoint) (api.AgentList, error) {
	deadline := time.Now().Add(p.o.Timeout)
	l, retryAfter, err := p.fetchOnce(ctx, c, ep)
	if err == nil || retryAfter <= 0 || time.Now().Add(retryAfter).After(deadline) {
		return l, err
	}
	t := time.NewTimer(retryAfter)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return api.AgentList{}, fmt.Errorf("%w (waiting to ask again: %w)", err, ctx.Err())
	case <-t.C:
	}
	l, _, err = p.fetchOnce(ctx, c, ep)
	return l, err
}

// fetchOnce is one read; retryAfter is the wait a 429 or 503 asked for.
func (p *Peers) fetchOnce(ctx context.Context, c *http.Client, ep Endpoint) (_ api.AgentList, retryAfter time.Duration, _ error) {
	tok, err := os.ReadFile(p.o.TokenFile)
	if err != nil {
		return api.AgentList{}, retryAfter, fmt.Errorf("this replica's token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+ep.Address+api.PathPeerAgents, nil)
	if err != nil {
		return api.AgentList{}, retryAfter, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := c.Do(req)
	if err != nil {
		return api.AgentList{}, retryAfter, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return api.AgentList{}, retryAfter, err
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
				retryAfter = time.Duration(secs) * time.Second
			}
		}
		return api.AgentList{}, retryAfter, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var l api.AgentList
	if err := json.Unmarshal(body, &l); err != nil {
		return api.AgentList{}, retryAfter, fmt.Errorf("not the fleet API's JSON: %w", err)
	}
	return l, 0, nil
}

// ErrNotPeer is wrapped when a token is genuine but not a fleet server's.
var ErrNotPeer = errors.New("not a fleet server replica")

// Authorize says whether caller (a verified token) is a replica of this
// fleet server: its own service account in its own namespace.
func Authorize(c callerauth.Caller, namespace, serviceAccount string) error {
	if c.Namespace != namespace || c.ServiceAccount != serviceAccount {
		return fmt.Errorf("%w: the token is service account %s/%s; only %s/%s reads a replica's agents (people use the local port, through kubectl port-forward)",
			ErrNotPeer, c.Namespace, c.ServiceAccount, namespace, serviceAccount)
	}
	return nil
}
