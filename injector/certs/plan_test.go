package certs

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var (
	t0     = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	policy = Policy{CAValidity: 300 * 24 * time.Hour, CertValidity: 30 * 24 * time.Hour}
	names  = ServiceDNSNames("fargate-otel-injector", "fargate-otel")
)

func day(n float64) time.Duration { return time.Duration(n * 24 * float64(time.Hour)) }

// trusts says whether a client holding bundle accepts leaf for its first name.
func trusts(t *testing.T, bundle []byte, leaf *KeyPair, at time.Time) bool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("bundle holds no certificate")
	}
	_, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: leaf.Cert.DNSNames[0], Roots: pool, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

func plan(t *testing.T, s CAState, at time.Time) (CAState, bool) {
	t.Helper()
	out, changed, err := PlanCA(s, at, policy)
	if err != nil {
		t.Fatal(err)
	}
	return out, changed
}

func TestPlanCALifecycle(t *testing.T) {
	s, changed := plan(t, CAState{}, t0)
	if !changed || s.Current == nil || s.Next != nil || s.Previous != nil {
		t.Fatalf("from nothing: want a current CA only, got %+v (changed %v)", s, changed)
	}
	first := s.Current
	if got := first.Cert.NotAfter.Sub(t0); got != policy.CAValidity {
		t.Errorf("CA validity %s, want %s", got, policy.CAValidity)
	}

	// Nothing to do until half of its life is gone.
	if _, changed := plan(t, s, t0.Add(day(149))); changed {
		t.Error("changed at day 149 of 300")
	}
	// At half: a next CA, published but not signing.
	s, changed = plan(t, s, t0.Add(day(151)))
	if !changed || s.Next == nil || !sameCert(s.Current, first) {
		t.Fatalf("day 151: want the same current CA and a new next one, got %+v", s)
	}
	next := s.Next
	if _, changed := plan(t, s, t0.Add(day(199))); changed {
		t.Error("changed at day 199 with a next CA already published")
	}
	// A third left: next takes over, the old one stays as previous.
	s, changed = plan(t, s, t0.Add(day(201)))
	if !changed || !sameCert(s.Current, next) || !sameCert(s.Previous, first) || s.Next != nil {
		t.Fatalf("day 201: want next as current and the first as previous, got %+v", s)
	}
	if s.Previous.Key != nil {
		t.Error("the previous CA's key is kept: only its certificate is needed")
	}
	// The previous CA leaves the bundle when it expires.
	s, changed = plan(t, s, t0.Add(day(300.5)))
	if !changed || s.Previous != nil {
		t.Fatalf("day 300.5: the expired previous CA is still there: %+v", s)
	}
	if !sameCert(s.Current, next) {
		t.Error("the current CA changed when only the previous one expired")
	}
}

func TestPlanCARecoversFromBadState(t *testing.T) {
	good, _ := plan(t, CAState{}, t0)
	leaf, err := NewServing(good.Current, names, t0, policy.CertValidity)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]CAState{
		"expired current":          {Current: good.Current},
		"current without its key":  {Current: certOnly(good.Current)},
		"a serving cert as the CA": {Current: leaf},
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			at := t0.Add(day(1))
			if name == "expired current" {
				at = t0.Add(day(301))
			}
			out, changed := plan(t, s, at)
			if !changed || out.Current == nil || out.Current.Key == nil || !out.Current.Cert.IsCA || sameCert(out.Current, s.Current) {
				t.Fatalf("want a new current CA, got %+v", out)
			}
		})
	}
}

func TestPlanLeaf(t *testing.T) {
	s, _ := plan(t, CAState{}, t0)
	leaf, issued, err := PlanLeaf(nil, s, names, t0, policy)
	if err != nil || !issued {
		t.Fatalf("no certificate yet: want one issued (err %v)", err)
	}
	if !trusts(t, s.Bundle(), leaf, t0) {
		t.Fatal("the bundle does not verify the new serving certificate")
	}
	if strings.Join(leaf.Cert.DNSNames, ",") != strings.Join(names, ",") || leaf.Cert.Subject.CommonName != names[0] {
		t.Errorf("names %v / CN %q, want %v", leaf.Cert.DNSNames, leaf.Cert.Subject.CommonName, names)
	}

	keep := func(at time.Time) bool {
		t.Helper()
		_, issued, err := PlanLeaf(leaf, s, names, at, policy)
		if err != nil {
			t.Fatal(err)
		}
		return !issued
	}
	if !keep(t0.Add(day(19))) {
		t.Error("renewed at day 19 of 30")
	}
	if keep(t0.Add(day(21))) {
		t.Error("not renewed with less than a third of its life left")
	}
	if _, issued, _ := PlanLeaf(leaf, s, []string{"other.ns.svc"}, t0, policy); !issued {
		t.Error("not renewed for other DNS names")
	}
	other, _ := plan(t, CAState{}, t0)
	if _, issued, _ := PlanLeaf(leaf, other, names, t0, policy); !issued {
		t.Error("not renewed when signed by a CA that is not in the bundle")
	}
	if _, issued, _ := PlanLeaf(certOnly(leaf), s, names, t0, policy); !issued {
		t.Error("not renewed without its key")
	}
}

// TestRotationNeverBreaksAClient walks through three CA lifetimes, one day
// at a time: whenever something is reissued, a client that read the bundle
// before (even long before: a collector reads it once at start) still
// accepts the serving certificate, and so does one that reads the new bundle.
func TestRotationNeverBreaksAClient(t *testing.T) {
	var s CAState
	var leaf *KeyPair
	type snapshot struct{ bundle []byte }
	var seen []snapshot
	cas, leaves := 0, 0
	for d := 0; d <= 900; d++ {
		now := t0.Add(day(float64(d)))
		var changed, issued bool
		var err error
		s, changed = plan(t, s, now)
		if leaf, issued, err = PlanLeaf(leaf, s, names, now, policy); err != nil {
			t.Fatal(err)
		}
		if changed {
			cas++
		}
		if issued {
			leaves++
		}
		seen = append(seen, snapshot{s.Bundle()})
		if !trusts(t, s.Bundle(), leaf, now) {
			t.Fatalf("day %d: the current bundle does not verify the serving certificate", d)
		}
		// A client that read its bundle up to 50 days ago (the time between
		// a next CA's publication and its taking over) still connects.
		for _, ago := range []int{1, 10, 25, 50} {
			if old := d - ago; old >= 0 && !trusts(t, seen[old].bundle, leaf, now) {
				t.Fatalf("day %d: a client with the bundle of day %d is refused", d, old)
			}
		}
	}
	// 900 days, CAs of 300: a next CA at 150, a handover at 200 and every 150
	// days after; serving certificates every 20 days.
	if cas < 10 || leaves < 40 {
		t.Errorf("only %d CA changes and %d serving certificates in 900 days", cas, leaves)
	}
	t.Logf("900 days: %d CA changes, %d serving certificates", cas, leaves)
}

func TestPolicyValidate(t *testing.T) {
	if err := (Policy{CAValidity: DefaultCAValidity, CertValidity: DefaultCertValidity}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := (Policy{CAValidity: time.Hour, CertValidity: time.Hour}).Validate(); err == nil {
		t.Error("a CA that lives as long as what it signs was accepted")
	}
	if err := (Policy{CAValidity: time.Hour}).Validate(); err == nil {
		t.Error("a zero validity was accepted")
	}
}
