package cluster

import (
	"net"
	"testing"
)

func TestFirstServiceIP(t *testing.T) {
	for cidr, want := range map[string]string{"10.0.0.0/24": "10.0.0.1", "10.96.0.0/12": "10.96.0.1"} {
		got, err := firstServiceIP(cidr)
		if err != nil || got != want {
			t.Errorf("firstServiceIP(%s) = %s, %v; want %s", cidr, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.0", "fd00::/108"} {
		if _, err := firstServiceIP(bad); err == nil {
			t.Errorf("firstServiceIP(%s): no error", bad)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:              "/tmp/a",
		`/tmp/with\040space`:  "/tmp/with space",
		`/tmp/tab\011and\134`: "/tmp/tab\tand\\",
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequirePrivateNetNS(t *testing.T) {
	// TestMain moved this test binary into a namespace of its own.
	if err := RequirePrivateNetNS(); err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(NodeIP); ip == nil || ip.IsLoopback() {
		t.Fatalf("NodeIP %s must be a non-loopback address: the API server refuses to proxy to loopback", NodeIP)
	}
}
