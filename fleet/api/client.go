package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client reads one replica's local API (through a port-forward, see
// PortForward, or from inside the pod).
type Client struct {
	// BaseURL is e.g. http://127.0.0.1:34567.
	BaseURL string
	// HTTP defaults to a client with a 30s timeout.
	HTTP *http.Client
}

// Fleet is the merged view of every replica, filtered by f on the server.
func (c Client) Fleet(ctx context.Context, f Filter) (Fleet, error) {
	var out Fleet
	err := c.get(ctx, PathFleet, f, &out)
	return out, err
}

// Agents is the replica's own agents.
func (c Client) Agents(ctx context.Context) (AgentList, error) {
	var out AgentList
	err := c.get(ctx, PathAgents, Filter{}, &out)
	return out, err
}

// EffectiveConfig is the redacted YAML agent uid runs, as it reported it.
func (c Client) EffectiveConfig(ctx context.Context, uid string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+PathAgentConfig+uid+"/config", nil)
	if err != nil {
		return "", err
	}
	body, err := c.do(req)
	return string(body), err
}

func (c Client) get(ctx context.Context, path string, f Filter, out any) error {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if q := f.Query().Encode(); q != "" {
		u += "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	body, err := c.do(req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("fleet server %s: not the fleet API's JSON: %w", u, err)
	}
	return nil
}

func (c Client) do(req *http.Request) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fleet server: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("fleet server %s: %w", req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fleet server %s: %s: %s", req.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}
