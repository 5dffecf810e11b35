//go:build !windows

package main

import (
	"bytes"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log written by the hard stop's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testHardStop(timeout time.Duration, code int) (*hardStop, *syncBuffer, chan int) {
	var out syncBuffer
	exited := make(chan int, 1)
	h := newHardStop(jsonLogger(&out), timeout, code)
	h.exit = func(c int) { exited <- c }
	h.pending = func() []string {
		return []string{"receiver kubelet_stats (pipelines: metrics): its shutdown has not returned"}
	}
	return h, &out, exited
}

// TestTheHardStopEndsAShutdownThatOutlivesItsDeadline: after SIGTERM, a
// process still running at the deadline exits with the code chosen, and
// says what it was waiting for.
func TestTheHardStopEndsAShutdownThatOutlivesItsDeadline(t *testing.T) {
	h, out, exited := testHardStop(50*time.Millisecond, hardStopSidecarCode)
	go h.watch()
	h.signals <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit code %d, want 0 for a sidecar", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after the deadline")
	}
	for _, want := range []string{`"level":"error"`, "did not stop within 50ms of SIGTERM", "kubelet_stats", `"exit_code":0`, shutdownTimeoutEnv} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// TestTheHardStopWaitsForASignal: no signal, no exit; a shutdown that ends
// (disarm) before the deadline is not cut.
func TestTheHardStopWaitsForASignal(t *testing.T) {
	h, _, exited := testHardStop(time.Millisecond, hardStopCode)
	done := make(chan struct{})
	go func() { h.watch(); close(done) }()
	select {
	case <-exited:
		t.Fatal("exited without a signal")
	case <-time.After(50 * time.Millisecond):
	}
	close(h.disarmed)
	<-done

	h, _, exited = testHardStop(time.Minute, hardStopCode)
	done = make(chan struct{})
	go func() { h.watch(); close(done) }()
	h.signals <- syscall.SIGTERM
	close(h.disarmed)
	<-done
	select {
	case <-exited:
		t.Fatal("exited although the shutdown ended before the deadline")
	default:
	}
}

func TestShutdownTimeout(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  time.Duration
		warns bool
	}{
		{"", defaultShutdownTimeout, false},
		{"28s", 28 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"28", defaultShutdownTimeout, true},
		{"0s", defaultShutdownTimeout, true},
		{"-5s", defaultShutdownTimeout, true},
	} {
		got, warning := shutdownTimeout(tt.value)
		if got != tt.want || (warning != "") != tt.warns {
			t.Errorf("shutdownTimeout(%q) = %s, %q; want %s, warning %v", tt.value, got, warning, tt.want, tt.warns)
		}
		if tt.warns && !strings.Contains(warning, shutdownTimeoutEnv) {
			t.Errorf("the warning for %q does not name %s: %s", tt.value, shutdownTimeoutEnv, warning)
		}
	}
}
