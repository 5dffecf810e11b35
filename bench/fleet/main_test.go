package main

import (
	"log"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The bench runs its server as a second process of its own binary.
	if os.Getenv(envRole) == "server" {
		if err := serve(); err != nil {
			log.Fatal(err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTheBenchRuns: the bench at a size that takes seconds, so that a
// change that breaks it fails make test (the node proxy's token shape check
// once made it connect no agent at all, unseen until the next full run).
func TestTheBenchRuns(t *testing.T) {
	connectWait = 30 * time.Second
	r, err := run(20, time.Second, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.connectTime <= 0 || r.p100 <= 0 || r.back <= 0 || r.rssLoaded <= r.rssIdle {
		t.Fatalf("a run of 20 agents measured nothing: %+v", r)
	}
	t.Logf("20 agents: connected in %v, change at 100%% in %v, all back in %v", r.connectTime, r.p100, r.back)
}
