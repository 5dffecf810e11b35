package tee

import (
	"syscall"
	"testing"
	"time"
)

func TestWaiterReportsStreamsInArrivalOrderAndKeepsDeadlines(t *testing.T) {
	w, err := newWaiter(3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	var pipes [2][2]int
	for i := range pipes {
		if err := syscall.Pipe2(pipes[i][:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = syscall.Close(pipes[i][0]); _ = syscall.Close(pipes[i][1]) }()
		if err := w.add(pipes[i][0], int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(evs []syscall.EpollEvent) []int32 {
		var out []int32
		for _, ev := range evs {
			out = append(out, ev.Fd)
		}
		return out
	}

	// Nothing there: a poll returns nothing, a wait returns nothing at the
	// deadline, not before.
	if evs, err := w.wait(false, time.Time{}); err != nil || len(evs) != 0 {
		t.Fatalf("poll of quiet pipes: %v %v", ids(evs), err)
	}
	deadline := time.Now().Add(30 * time.Millisecond)
	if evs, err := w.wait(true, deadline); err != nil || len(evs) != 0 {
		t.Fatalf("wait on quiet pipes: %v %v", ids(evs), err)
	}
	if time.Now().Before(deadline) {
		t.Fatal("the wait returned before its deadline with nothing to report")
	}

	// The second pipe first: reported first. An expired deadline does not
	// stick once the wait has none.
	for _, i := range []int{1, 0} {
		if _, err := syscall.Write(pipes[i][1], []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := w.wait(true, time.Time{})
	if got := ids(evs); err != nil || len(got) != 2 || got[0] != 1 || got[1] != 0 {
		t.Fatalf("got events %v (%v), want [1 0]", got, err)
	}

	// Edge-triggered: what was reported is not reported again; new data is,
	// to a wait that parks for it.
	if evs, err := w.wait(false, time.Time{}); err != nil || len(evs) != 0 {
		t.Fatalf("events reported twice: %v %v", ids(evs), err)
	}
	go func() { _, _ = syscall.Write(pipes[0][1], []byte("y")) }()
	evs, err = w.wait(true, time.Now().Add(time.Minute))
	if got := ids(evs); err != nil || len(got) != 1 || got[0] != 0 {
		t.Fatalf("got events %v (%v), want [0]", got, err)
	}
}
