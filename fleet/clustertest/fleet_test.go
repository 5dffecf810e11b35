package clustertest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/fleettest"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/server"
	"github.com/fargate-otel/fargate-otel/internal/polltest"
	"github.com/fargate-otel/fargate-otel/nodeproxy/doctor"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// TestFleet runs one control plane for every scenario (each its own
// namespaces): starting one costs seconds of the suite's minutes.
func TestFleet(t *testing.T) {
	e := newEnv(t)
	e.liveConfigMap(map[string]string{desired.KeyLogLevel: "warn", desired.KeyExporters: exportersYAML("otlp_grpc/gateway", "gw.obs.svc:4317")})
	r := e.startReplica("fargate-otel-fleet-0", true)

	t.Run("identity, health and live settings", func(t *testing.T) { testIdentity(t, e, r) })
	t.Run("refusals", func(t *testing.T) { testRefusals(t, e, r) })
	t.Run("namespace ConfigMap is live and only the pod's own", func(t *testing.T) { testNamespaceConfigMap(t, e, r) })
	t.Run("cluster live settings change", func(t *testing.T) { testLiveChange(t, e, r) })
	t.Run("no secret in the view", func(t *testing.T) { testNoSecret(t, e, r) })
	t.Run("doctor's stale-sidecar check", func(t *testing.T) { testDoctor(t, e, r) })
	t.Run("kind comes from the service account", func(t *testing.T) { testKind(t, e, r) })
	t.Run("page in a real Chromium", func(t *testing.T) { testPage(t, r) })
	t.Run("figures sent at a reconnect are kept", func(t *testing.T) { testFiguresAtReconnect(t, e, r) })
	t.Run("replicas merge", func(t *testing.T) { testReplicasMerge(t, e, r) })
}

func testIdentity(t *testing.T, e *env, r *replica) {
	var agents []*fleettest.Agent
	var pods []*corev1.Pod
	for i := range 3 {
		p := e.pod("shop", fmt.Sprintf("cart-%d", i), "cart")
		pods = append(pods, p)
		agents = append(agents, e.agentFor(r, p, e.token(p, server.Audience), func(o *fleettest.AgentOptions) {
			if i == 2 {
				o.Healthy, o.LastError = false, "exporter otlp_grpc/gateway: connection refused"
			}
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, p := range pods {
		a := waitAgent(t, r, string(p.UID), "agent "+p.Name+" listed, live settings applied", func(a api.Agent) error {
			if a.RemoteConfig.Status != "APPLIED" || a.RemoteConfig.Last != a.RemoteConfig.Desired {
				return fmt.Errorf("remote config %+v", a.RemoteConfig)
			}
			return nil
		})
		if a.Namespace != "shop" || a.Pod != p.Name || !a.Connected || a.Replica != r.name || a.Node != p.Spec.NodeName || a.CollectorVersion != version {
			t.Errorf("agent %s: %+v", p.Name, a)
		}
		if wantHealthy := i != 2; a.Health.Healthy != wantHealthy || !a.Health.Reported {
			t.Errorf("agent %s: health %+v, want healthy=%v", p.Name, a.Health, wantHealthy)
		}
		if len(a.Stale) != 0 {
			t.Errorf("agent %s is stale: %v", p.Name, a.Stale)
		}
		got, err := agents[i].WaitConfig(ctx, func(o sidecarconfig.Overrides) bool { return o.LogLevel == "warn" })
		if err != nil {
			t.Fatal(err)
		}
		o, _ := sidecarconfig.ParseOverrides(got.Body)
		if len(o.Exporters) != 1 || o.Exporters[0].Config["endpoint"] != "gw.obs.svc:4317" {
			t.Errorf("agent %s got %s: want the cluster's exporters", p.Name, got.Body)
		}
	}
	f, err := r.client.Fleet(ctx, api.Filter{Unhealthy: true, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Agents) != 1 || f.Agents[0].Pod != "cart-2" || !strings.Contains(f.Agents[0].Health.LastError, "connection refused") ||
		len(f.Agents[0].Health.Unhealthy) != 1 {
		t.Errorf("unhealthy filter: %+v", f.Agents)
	}

	// Figures: rates from the totals of two reports.
	rep := registry.FiguresReport{LinesRead: map[string]int64{"app/stdout": 100}, WrapperDropped: map[string]int64{"app": 0}}
	if err := agents[0].SendFigures(rep); err != nil {
		t.Fatal(err)
	}
	waitAgent(t, r, string(pods[0].UID), "first figures", func(a api.Agent) error {
		if a.Figures.LinesRead != 100 {
			return fmt.Errorf("figures %+v", a.Figures)
		}
		return nil
	})
	rep.LinesRead["app/stdout"], rep.WrapperDropped["app"] = 700, 5
	if err := agents[0].SendFigures(rep); err != nil {
		t.Fatal(err)
	}
	a := waitAgent(t, r, string(pods[0].UID), "rates", func(a api.Agent) error {
		if a.Figures.LinesRead != 700 || a.Figures.LinesPerSecond <= 0 || a.Figures.DropsPerSecond <= 0 {
			return fmt.Errorf("figures %+v", a.Figures)
		}
		return nil
	})
	if !a.Dropping() {
		t.Errorf("agent with dropped lines is not dropping: %+v", a.Figures)
	}
	f, err = r.client.Fleet(ctx, api.Filter{Dropping: true, Namespace: "shop"})
	if err != nil || len(f.Agents) != 1 || f.Agents[0].Pod != "cart-0" {
		t.Errorf("dropping filter: %+v, %v", f.Agents, err)
	}
}

func testRefusals(t *testing.T, e *env, r *replica) {
	mine := e.pod("billing", "invoice-0", "invoice")
	other := e.pod("billing", "invoice-1", "invoice")
	gone := e.pod("billing", "invoice-2", "invoice")
	goneToken := e.token(gone, server.Audience)

	// The deleted pod's sidecar was connected (its token reviewed and
	// cached), then its pod is deleted: a reconnect is refused.
	ga := e.agentFor(r, gone, goneToken, nil)
	waitAgent(t, r, string(gone.UID), "the soon-deleted pod's agent connects", func(a api.Agent) error {
		if !a.Connected {
			return errors.New("not connected")
		}
		return nil
	})
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = ga.Stop(stopCtx)
	cancel()
	if err := e.kube.CoreV1().Pods("billing").Delete(e.ctx, gone.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	// The API server caches accepted tokens for a few seconds: wait until
	// it refuses this one, as it does for good once that cache expired.
	polltest.Until(t, 30*time.Second, "the API server refuses the deleted pod's token", func() error {
		tr, err := e.kube.AuthenticationV1().TokenReviews().Create(e.ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: goneToken, Audiences: []string{server.Audience}}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if tr.Status.Authenticated {
			return errors.New("still accepted")
		}
		return nil
	})

	forgedUID := uuid.NewString()
	cases := []struct {
		name string
		pod  *corev1.Pod
		tok  string
		mod  func(*fleettest.AgentOptions)
		// want is a fragment of the server's error response the agent
		// sees, or (for a refused upgrade, which opamp-go reports as a bad
		// handshake) the metric of the refusal.
		want string
		// never is a uid that must never be listed.
		never string
	}{
		{"another pod's token", mine, e.token(other, server.Audience), nil, "is not the uid of pod billing/invoice-1", string(mine.UID)},
		{"wrong audience", mine, e.token(mine, "fargate-otel-nodeproxy"), nil, `connections_total{result="unauthenticated"}`, string(mine.UID)},
		{"deleted pod's token", gone, goneToken, nil, `connections_total{result="unauthenticated"}`, ""},
		{"no token", mine, "", nil, `connections_total{result="no_token"}`, string(mine.UID)},
		{"forged instance uid", mine, e.token(mine, server.Audience), func(o *fleettest.AgentOptions) { o.UID = forgedUID }, "is not the uid of pod billing/invoice-0", forgedUID},
		{"forged namespace", mine, e.token(mine, server.Audience), func(o *fleettest.AgentOptions) { o.Namespace = "kube-system" }, `k8s.namespace.name="kube-system"`, string(mine.UID)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := c.tok
			a := e.agentFor(r, c.pod, tok, func(o *fleettest.AgentOptions) {
				if tok == "" {
					o.Token = nil
				}
				if c.mod != nil {
					c.mod(o)
				}
			})
			metric := strings.HasPrefix(c.want, "connections_total")
			before := 0.0
			if metric {
				before = r.metric(t, "fargate_otel_fleet_"+c.want)
			}
			polltest.Until(t, 20*time.Second, "the agent is refused", func() error {
				if metric {
					if n := r.metric(t, "fargate_otel_fleet_"+c.want); n <= before {
						return fmt.Errorf("%s still %v (agent errors %q)", c.want, n, a.ConnectErrors())
					}
					return nil
				}
				if errs := a.ServerErrors(); !slices.ContainsFunc(errs, func(s string) bool { return strings.Contains(s, c.want) }) {
					return fmt.Errorf("server errors so far %q, want one with %q", errs, c.want)
				}
				return nil
			})
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.Stop(stopCtx)
			if len(a.Received()) != 0 {
				t.Errorf("a refused agent received live settings: %d", len(a.Received()))
			}
			if c.never == "" {
				return
			}
			f, err := r.client.Fleet(context.Background(), api.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := agentIn(f, c.never); err == nil {
				t.Errorf("a refused agent is listed: %+v", got)
			}
		})
	}
	if _, err := agentIn(mustFleet(t, r), string(gone.UID)); err == nil {
		if a, _ := agentIn(mustFleet(t, r), string(gone.UID)); a.Connected {
			t.Errorf("the deleted pod's agent is connected again: %+v", a)
		}
	}
}

func mustFleet(t *testing.T, r *replica) api.Fleet {
	t.Helper()
	f, err := r.client.Fleet(context.Background(), api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testNamespaceConfigMap(t *testing.T, e *env, r *replica) {
	e.namespace("team-a")
	e.namespace("team-b")
	e.configMap("team-a", "exporters", map[string]string{"list": exportersYAML("otlp_grpc/a", "a-sink.team-a.svc:4317")})
	e.configMap("team-b", "exporters", map[string]string{"list": exportersYAML("otlp_grpc/b", "b-sink.team-b.svc:4317")})
	src := func(o *fleettest.AgentOptions) { o.ExportersSource = "configmap:exporters/list" }

	pa := e.pod("team-a", "web-0", "web")
	aa := e.agentFor(r, pa, e.token(pa, server.Audience), src)
	// team-c has no such ConfigMap: its pod must never get another
	// namespace's, whatever it names.
	pc := e.pod("team-c", "web-0", "web")
	ac := e.agentFor(r, pc, e.token(pc, server.Audience), src)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hasExporter := func(id string) func(sidecarconfig.Overrides) bool {
		return func(o sidecarconfig.Overrides) bool {
			return len(o.Exporters) == 1 && o.Exporters[0].ID == id && o.LogLevel == "warn"
		}
	}
	if _, err := aa.WaitConfig(ctx, hasExporter("otlp_grpc/a")); err != nil {
		t.Fatalf("team-a's sidecar: %v", err)
	}
	waitAgent(t, r, string(pc.UID), "team-c's sidecar gets nothing and says why", func(a api.Agent) error {
		if !strings.Contains(a.RemoteConfig.DesiredError, "team-c/exporters not found") {
			return fmt.Errorf("remote config %+v", a.RemoteConfig)
		}
		return nil
	})

	// An edit reaches the sidecar within seconds, without a restart.
	t0 := time.Now()
	e.configMap("team-a", "exporters", map[string]string{"list": exportersYAML("otlp_grpc/a2", "a2-sink.team-a.svc:4317")})
	got, err := aa.WaitConfig(ctx, hasExporter("otlp_grpc/a2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a namespace ConfigMap edit reached the sidecar in %v", got.At.Sub(t0).Round(time.Millisecond))
	if aa.Connects() != 1 {
		t.Errorf("the sidecar connected %d times", aa.Connects())
	}

	// A bad edit is not sent; the view and an Event say why.
	n := len(aa.Received())
	bad := e.configMap("team-a", "exporters", map[string]string{"list": "- id: nosuchtype/x\n"})
	waitAgent(t, r, string(pa.UID), "the bad ConfigMap is reported", func(a api.Agent) error {
		if !strings.Contains(a.RemoteConfig.DesiredError, "nosuchtype") {
			return fmt.Errorf("remote config %+v", a.RemoteConfig)
		}
		return nil
	})
	polltest.Until(t, 20*time.Second, "an Event on the bad ConfigMap", func() error {
		evs, err := e.kube.EventsV1().Events("team-a").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name == "exporters" && ev.Regarding.ResourceVersion == bad.ResourceVersion && ev.Reason == "InvalidFleetSettings" && strings.Contains(ev.Note, "nosuchtype") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none about resourceVersion %s", len(evs.Items), bad.ResourceVersion)
	})
	if len(aa.Received()) != n {
		t.Errorf("live settings were sent after a bad edit: %d received, had %d", len(aa.Received()), n)
	}

	// Nothing from team-b ever reached team-a or team-c.
	for _, a := range []*fleettest.Agent{aa, ac} {
		for _, rc := range a.Received() {
			if strings.Contains(string(rc.Body), "team-b") {
				t.Errorf("another namespace's exporters were sent: %s", rc.Body)
			}
		}
	}
	if len(ac.Received()) != 0 {
		t.Errorf("team-c's sidecar received %d live settings", len(ac.Received()))
	}
}

func testLiveChange(t *testing.T, e *env, r *replica) {
	p := e.pod("ops", "job-0", "job")
	a := e.agentFor(r, p, e.token(p, server.Audience), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.WaitConfig(ctx, func(o sidecarconfig.Overrides) bool { return o.LogLevel == "warn" }); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	e.liveConfigMap(map[string]string{desired.KeyLogLevel: "debug", desired.KeyTraceSampling: "0.25", desired.KeyKubeletStatsInterval: "1m",
		desired.KeyExporters: exportersYAML("otlp_grpc/gateway", "gw.obs.svc:4317")})
	got, err := a.WaitConfig(ctx, func(o sidecarconfig.Overrides) bool {
		return o.LogLevel == "debug" && o.TraceSampling != nil && *o.TraceSampling == 0.25 && o.KubeletStatsInterval != nil && time.Duration(*o.KubeletStatsInterval) == time.Minute
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a live settings edit reached the sidecar in %v", got.At.Sub(t0).Round(time.Millisecond))

	// A bad edit of the cluster's settings keeps the last good ones.
	n := len(a.Received())
	e.liveConfigMap(map[string]string{desired.KeyLogLevel: "loud"})
	polltest.Until(t, 20*time.Second, "an Event on the live settings ConfigMap", func() error {
		evs, err := e.kube.EventsV1().Events(releaseNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name == desired.LiveConfigMap && strings.Contains(ev.Note, `logLevel "loud"`) {
				return nil
			}
		}
		return fmt.Errorf("no Event yet among %d", len(evs.Items))
	})
	if len(a.Received()) != n {
		t.Errorf("a refused live settings edit was sent")
	}
	// Back to what the other subtests expect.
	e.liveConfigMap(map[string]string{desired.KeyLogLevel: "warn", desired.KeyExporters: exportersYAML("otlp_grpc/gateway", "gw.obs.svc:4317")})
}

func testNoSecret(t *testing.T, e *env, r *replica) {
	p := e.pod("vault", "app-0", "app")
	e.agentFor(r, p, e.token(p, server.Audience), func(o *fleettest.AgentOptions) {
		// An agent that forgot to redact: the server does it again.
		o.EffectiveConfig = "exporters:\n  otlp_http/x:\n    endpoint: https://x.example\n    headers:\n      authorization: Bearer sekrit-123\n      x-team: ${env:TEAM}\n    api_key: sekrit-456\n"
		o.Healthy, o.LastError = false, "export failed"
	})
	waitAgent(t, r, string(p.UID), "the agent is listed", func(api.Agent) error { return nil })
	var cfg string
	polltest.Until(t, 20*time.Second, "the effective config is kept", func() error {
		var err error
		cfg, err = r.client.EffectiveConfig(context.Background(), string(p.UID))
		return err
	})
	if strings.Contains(cfg, "sekrit") || !strings.Contains(cfg, "[redacted]") || !strings.Contains(cfg, "${env:TEAM}") || !strings.Contains(cfg, "https://x.example") {
		t.Errorf("effective config as served:\n%s", cfg)
	}
	resp, err := http.Get(r.client.BaseURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("page: %s", resp.Status)
	}
}

func testReplicasMerge(t *testing.T, e *env, r *replica) {
	r2 := e.startReplica("fargate-otel-fleet-1", true)
	// What the EndpointSlice controller writes for the headless Service:
	// here by hand (no controller manager runs), one slice per replica
	// since in this test they share an address.
	for _, rep := range []*replica{r, r2} {
		host, port := splitHostPort(t, rep.addrs.OpAMP)
		_, err := e.kube.DiscoveryV1().EndpointSlices(releaseNS).Create(e.ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: rep.name, Labels: map[string]string{discoveryv1.LabelServiceName: "fargate-otel-fleet-peers"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: releaseNS, Name: rep.name}}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("opamp"), Port: ptr.To(int32(port))}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	p := e.pod("merge", "on-second-0", "app")
	e.agentFor(r2, p, e.token(p, server.Audience), nil)
	waitAgent(t, r2, string(p.UID), "the second replica's agent in its merged view", func(a api.Agent) error {
		if a.Replica != r2.name {
			return fmt.Errorf("replica %s", a.Replica)
		}
		return nil
	})
	f, err := r2.client.Fleet(context.Background(), api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Partial() || len(f.Replicas) != 2 {
		t.Errorf("replicas %+v", f.Replicas)
	}
	// The first replica's agents are in the second's view too.
	if n := len(api.Filter{Namespace: "shop"}.Apply(f.Agents)); n != 3 {
		t.Errorf("the second replica's merged view holds %d of shop's 3 sidecars (replicas %+v)", n, f.Replicas)
	}

	// Peers' reads need the fleet server's own token.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool, ServerName: serverName}}}
	someone := e.pod("merge", "nosy-0", "app")
	for tok, want := range map[string]int{"": http.StatusUnauthorized, e.token(someone, server.Audience): http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r2.addrs.OpAMP+api.PathPeerAgents, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("peer read with token %v: %s, want %d", tok != "", resp.Status, want)
		}
	}

	// A replica that is down leaves a partial view that says so.
	r2.stop()
	f, err = r.client.Fleet(context.Background(), api.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Partial() {
		t.Errorf("replicas %+v: want the stopped one with an error", f.Replicas)
	}
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, n
}

// metric reads one sample of the replica's /metrics (0 when absent).
func (r *replica) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.addrs.Probes + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func testDoctor(t *testing.T, e *env, r *replica) {
	var pods []*corev1.Pod
	for i := range 3 {
		p := e.pod("doc", fmt.Sprintf("api-%d", i), "api")
		// What the injector adds, and what a kubelet would report.
		p.Annotations = map[string]string{doctor.StatusAnnotation: "{}"}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "otel-collector", Image: "example.invalid/c:1",
			Env: []corev1.EnvVar{{Name: "FARGATE_OTEL_FLEET_ENDPOINT", Value: "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp"}}})
		_ = e.kube.CoreV1().Pods("doc").Delete(e.ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		p.ResourceVersion, p.UID = "", ""
		p, err := e.kube.CoreV1().Pods("doc").Create(e.ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		if p, err = e.kube.CoreV1().Pods("doc").UpdateStatus(e.ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	// A gateway replica has the fleet env too, but is no sidecar: the
	// injector did not make it (no status annotation), and it is not
	// counted, connected or not.
	gw := e.pod("doc", "fargate-otel-gateway-0", "fargate-otel-gateway")
	gw.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "FARGATE_OTEL_FLEET_ENDPOINT", Value: "wss://fargate-otel-fleet.fargate-otel.svc:4320/v1/opamp"}}
	_ = e.kube.CoreV1().Pods("doc").Delete(e.ctx, gw.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	gw.ResourceVersion, gw.UID = "", ""
	gw, err := e.kube.CoreV1().Pods("doc").Create(e.ctx, gw, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gw.Status.Phase = corev1.PodRunning
	if _, err := e.kube.CoreV1().Pods("doc").UpdateStatus(e.ctx, gw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.agentFor(r, pods[0], e.token(pods[0], server.Audience), nil)
	e.agentFor(r, pods[1], e.token(pods[1], server.Audience), func(o *fleettest.AgentOptions) { o.Version = "0.0.9" })
	for _, p := range pods[:2] {
		waitAgent(t, r, string(p.UID), "agent listed", func(api.Agent) error { return nil })
	}
	rep, err := doctor.Run(e.ctx, e.cp.Config, doctor.Options{Namespace: "doc", FleetURL: r.client.BaseURL, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := rep.Find(doctor.CheckFleet)
	if !ok || c.Status != doctor.Warn || !strings.Contains(c.Detail, "not connected: api-2") || !strings.Contains(c.Detail, "stale: api-1 (version)") || strings.Contains(c.Detail, "gateway") {
		t.Errorf("doctor's fleet check: %+v", c)
	}
}

// testKind: an agent of the gateway's service account is a gateway, listed
// as one and never sent the cluster's live settings (this replica has
// some); an agent of any other account that says it is a gateway, or a
// gateway's that says it is a sidecar, is refused as forged_kind. The
// simulated agents accept remote config whatever they say, so that what
// the server would send is seen. The gateway agent stays connected for the
// page test.
func testKind(t *testing.T, e *env, r *replica) {
	gwPod := e.pod(releaseNS, "fargate-otel-gateway-5c8d-a", "fargate-otel-gateway")
	sentBefore := r.metric(t, "fargate_otel_fleet_configs_sent_total")
	gw := e.agentFor(r, gwPod, e.token(gwPod, server.Audience), func(o *fleettest.AgentOptions) {
		o.Kind, o.InjectorVersion, o.ExportersSource, o.BootstrapHash = api.KindGateway, "", "", ""
	})
	old := e.pod("kinds", "legacy-0", "legacy")
	e.agentFor(r, old, e.token(old, server.Audience), func(o *fleettest.AgentOptions) { o.Kind = "-" })
	a := waitAgent(t, r, string(gwPod.UID), "the gateway is listed with its health", func(a api.Agent) error {
		if !a.Connected || !a.Health.Reported || a.ConfigHash == "" {
			return fmt.Errorf("not yet: %+v", a)
		}
		return nil
	})
	if a.Kind != api.KindGateway || a.RemoteConfig.Desired != "" || a.RemoteConfig.DesiredError != "" || len(a.Stale) != 0 {
		t.Errorf("the gateway: kind %q, remote config %+v, stale %v: want a gateway that is sent nothing and is not stale for it", a.Kind, a.RemoteConfig, a.Stale)
	}
	// An agent of an earlier release says no kind: its account decides.
	if a := waitAgent(t, r, string(old.UID), "the agent that says no kind is listed", func(api.Agent) error { return nil }); a.Kind != api.KindSidecar {
		t.Errorf("an agent that says no kind, of a sidecar's account, is a %q", a.Kind)
	}
	// The replica has live settings: the sidecar of no kind gets them, the
	// gateway does not.
	polltest.Until(t, 20*time.Second, "the sidecar of no kind gets the live settings", func() error {
		a, err := agentIn(mustFleet(t, r), string(old.UID))
		if err != nil {
			return err
		}
		if a.RemoteConfig.Status != "APPLIED" {
			return fmt.Errorf("remote config %+v", a.RemoteConfig)
		}
		return nil
	})
	if got := gw.Received(); len(got) != 0 {
		t.Errorf("the gateway was sent %d live settings", len(got))
	}
	if n := r.metric(t, "fargate_otel_fleet_configs_sent_total"); n <= sentBefore {
		t.Errorf("configs sent %v, were %v: the sidecar of no kind got none", n, sentBefore)
	}
	gateways, err := r.client.Fleet(context.Background(), api.Filter{Kind: api.KindGateway})
	if err != nil {
		t.Fatal(err)
	}
	if len(gateways.Agents) != 1 || gateways.Agents[0].UID != string(gwPod.UID) {
		t.Errorf("--kind gateway lists %+v", gateways.Agents)
	}

	for _, c := range []struct {
		name, ns, pod, sa, kind, want string
	}{
		{"a sidecar says it is a gateway", "kinds", "sneaky-0", "sneaky", api.KindGateway, `fargate-otel.kind="gateway"`},
		{"a sidecar of another namespace's fargate-otel-gateway account", "kinds", "fargate-otel-gateway-x", "fargate-otel-gateway", api.KindGateway, "which is a sidecar"},
		{"a gateway says it is a sidecar", releaseNS, "fargate-otel-gateway-5c8d-b", "fargate-otel-gateway", api.KindSidecar, "which is a gateway"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := e.pod(c.ns, c.pod, c.sa)
			before := r.metric(t, `fargate_otel_fleet_agents_refused_total{reason="forged_kind"}`)
			ag := e.agentFor(r, p, e.token(p, server.Audience), func(o *fleettest.AgentOptions) { o.Kind = c.kind })
			polltest.Until(t, 20*time.Second, "the agent is refused", func() error {
				if errs := ag.ServerErrors(); !slices.ContainsFunc(errs, func(s string) bool { return strings.Contains(s, c.want) }) {
					return fmt.Errorf("server errors so far %q, want one with %q", errs, c.want)
				}
				return nil
			})
			if n := r.metric(t, `fargate_otel_fleet_agents_refused_total{reason="forged_kind"}`); n <= before {
				t.Errorf("forged_kind refusals %v, were %v", n, before)
			}
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ag.Stop(stopCtx)
			if _, err := agentIn(mustFleet(t, r), string(p.UID)); err == nil {
				t.Errorf("an agent refused for its kind is listed")
			}
			if len(ag.Received()) != 0 {
				t.Errorf("an agent refused for its kind was sent live settings")
			}
		})
	}
}
