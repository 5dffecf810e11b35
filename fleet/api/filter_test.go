package api

import (
	"net/url"
	"testing"
	"time"
)

func TestFilterAndMerge(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ok := Agent{UID: "1", Namespace: "shop", Pod: "a", Connected: true, Health: Health{Reported: true, Healthy: true}}
	sick := Agent{UID: "2", Namespace: "shop", Pod: "b", Connected: true, Health: Health{Reported: true}}
	old := Agent{UID: "3", Namespace: "bill", Pod: "c", Connected: true, Health: Health{Reported: true, Healthy: true}, Stale: []string{StaleVersion}}
	drop := Agent{UID: "4", Namespace: "bill", Pod: "d", Connected: true, Health: Health{Reported: true, Healthy: true}, Figures: Figures{DropsPerSecond: 1}}
	all := []Agent{ok, sick, old, drop}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "abcd"},
		{Filter{Namespace: "shop"}, "ab"},
		{Filter{Unhealthy: true}, "b"},
		{Filter{Stale: true, Dropping: true}, "cd"},
		{Filter{Text: "D"}, "d"},
	} {
		got := ""
		for _, a := range c.f.Apply(all) {
			got += a.Pod
		}
		if got != c.want {
			t.Errorf("%+v: %s, want %s", c.f, got, c.want)
		}
		back, err := ParseFilter(c.f.Query())
		if err != nil || back != c.f {
			t.Errorf("query round trip %+v -> %+v (%v)", c.f, back, err)
		}
	}
	if _, err := ParseFilter(url.Values{"stale": {"maybe"}}); err == nil {
		t.Error("stale=maybe accepted")
	}

	// A sidecar that moved: its connected entry wins over the old one.
	moved := ok
	moved.Replica, moved.Connected, moved.LastSeen = "r0", false, t0.Add(time.Minute)
	now := ok
	now.Replica, now.LastSeen = "r1", t0
	m := Merge([]Agent{moved, old}, []Agent{now})
	if len(m) != 2 || m[1].Replica != "r1" || m[0].Pod != "c" {
		t.Errorf("merge %+v", m)
	}
}
