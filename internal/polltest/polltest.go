// Package polltest waits in tests for a condition, with a deadline rather
// than a sleep.
package polltest

import (
	"testing"
	"time"
)

// Interval is the wait between two checks.
const Interval = 100 * time.Millisecond

// Until calls check every Interval until it returns nil, and fails the
// test with what and check's last error once timeout has passed.
func Until(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(Interval)
	}
}
