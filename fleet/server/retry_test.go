package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

// TestRetryAfterSpreadsTheAgents: agents refused by the bound of all
// reviews get slots one after the other at its rate, so that they come back
// as fast as they can be reviewed and not all at once; once the slots are
// in the past, the next one starts from now.
func TestRetryAfterSpreadsTheAgents(t *testing.T) {
	s := &Server{}
	now := time.Unix(1_800_000_000, 0)
	global := &callerauth.RateLimitError{Global: true, QPS: 200, Burst: 400, RetryAfter: 5 * time.Millisecond}
	var got []int
	for range 1000 {
		got = append(got, s.retryAfter(fmt.Errorf("wrapped: %w", global), now))
	}
	// 1,000 agents at 200/s: five seconds of slots, 200 in each second.
	per := map[int]int{}
	for i, r := range got {
		if i > 0 && r < got[i-1] {
			t.Fatalf("slot %d: Retry-After %d after %d", i, r, got[i-1])
		}
		per[r]++
	}
	for sec := 1; sec <= 5; sec++ {
		if per[sec] != 200 {
			t.Errorf("%d agents told to come back after %ds, want 200 (%v)", per[sec], sec, per)
		}
	}
	// Later, with every slot past, an agent is told the next second.
	if r := s.retryAfter(global, now.Add(time.Minute)); r != 1 {
		t.Errorf("Retry-After %d once the slots are past, want 1", r)
	}
	// Slots are bounded.
	for range 100_000 {
		s.retryAfter(global, now.Add(time.Minute))
	}
	if r := s.retryAfter(global, now.Add(time.Minute)); r != int(maxRetrySlot/time.Second) {
		t.Errorf("Retry-After %d after 100,000 slots, want the bound %v", r, maxRetrySlot)
	}

	// One address over its own bound: when that bound allows one more.
	source := &callerauth.RateLimitError{Source: "10.0.0.7", QPS: 1, Burst: 10, RetryAfter: 2300 * time.Millisecond}
	if r := s.retryAfter(source, now); r != 3 {
		t.Errorf("per-source Retry-After %d, want 3", r)
	}
	// Anything else: the default.
	if r := s.retryAfter(errors.New("boom"), now); r != 5 {
		t.Errorf("Retry-After %d for another error, want 5", r)
	}
}
