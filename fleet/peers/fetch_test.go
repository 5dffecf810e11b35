package peers

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

// A peer whose token reviews are rate-limited answers 503 with a
// Retry-After; the replica asks once more then, within its budget, and gets
// the agents. A peer that keeps refusing is asked twice, not more, and its
// error is what the merged view shows.
func TestFetchAsksAgainAfterRetryAfter(t *testing.T) {
	for _, c := range []struct {
		name        string
		refusals    int32
		retryAfter  string
		wantErr     string
		wantAsked   int32
		wantAgentID string
	}{
		{name: "refused once", refusals: 1, retryAfter: "1", wantAsked: 2, wantAgentID: "a1"},
		{name: "refused for good", refusals: 100, retryAfter: "1", wantAsked: 2, wantErr: "503"},
		{name: "no Retry-After", refusals: 1, retryAfter: "", wantAsked: 1, wantErr: "503"},
		{name: "wait past the budget", refusals: 1, retryAfter: "30", wantAsked: 1, wantErr: "503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked atomic.Int32
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := asked.Add(1)
				if r.URL.Path != api.PathPeerAgents || r.Header.Get("Authorization") != "Bearer replica-token" {
					http.Error(w, "wrong request", http.StatusBadRequest)
					return
				}
				if n <= c.refusals {
					if c.retryAfter != "" {
						w.Header().Set("Retry-After", c.retryAfter)
					}
					http.Error(w, "token reviews rate-limited", http.StatusServiceUnavailable)
					return
				}
				_ = json.NewEncoder(w).Encode(api.AgentList{Replica: "peer", Agents: []api.Agent{{UID: "a1"}}})
			}))
			defer srv.Close()
			dir := t.TempDir()
			ca := filepath.Join(dir, "ca.crt")
			tok := filepath.Join(dir, "token")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tok, []byte("replica-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := New(nil, Options{CAFile: ca, TokenFile: tok, ServerName: "example.com"})
			client, err := p.client()
			if err != nil {
				t.Fatal(err)
			}
			l, err := p.fetch(context.Background(), client, Endpoint{Name: "peer", Address: strings.TrimPrefix(srv.URL, "https://")})
			if got := asked.Load(); got != c.wantAsked {
				t.Errorf("asked %d times, want %d", got, c.wantAsked)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Agents) != 1 || l.Agents[0].UID != c.wantAgentID {
				t.Errorf("agents %+v", l.Agents)
			}
		})
	}
}
