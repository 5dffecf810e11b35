package follow

import (
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/pathfilter"
)

// The node proxy checks the raw query and refuses %-escapes: every query
// the follower sends must pass its filter as it is, with the time intact.
func TestLogQueryPassesTheNodeProxysFilter(t *testing.T) {
	at := time.Date(2026, 12, 3, 18, 5, 30, 333338356, time.UTC).UnixNano()
	for _, o := range []logOptions{{}, {since: at}, {previous: true}, {previous: true, since: at}, {since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}} {
		uri := "/api/v1/nodes/node-a/proxy/containerLogs/shop/web-1/app?" + o.query()
		target, err := pathfilter.Allow("GET", uri)
		if err != nil {
			t.Errorf("%+v: the node proxy refuses %s: %v", o, uri, err)
			continue
		}
		if target.UpstreamPath() != uri {
			t.Errorf("%+v: forwarded as %s, sent %s", o, target.UpstreamPath(), uri)
		}
	}
	if q := (logOptions{since: at, previous: true}).query(); q != "follow=true&timestamps=true&sinceTime=2026-12-03T18:05:30.333338356Z&previous=true" {
		t.Errorf("query %s", q)
	}
}
