package gatewaytest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// credentialsTTL is how long each set of credentials the fake issues is
// valid: a run of sendFor outlives several, so the gateway must refresh them.
const (
	credentialsTTL = 2 * time.Second
	sendFor        = 7 * time.Second
)

// TestSigV4 runs the gateway with destinations.aws (CloudWatch Logs, X-Ray,
// Amazon Managed Prometheus) against the local fake, with credentials as
// a pod gets them on EKS: IRSA (a web identity token file exchanged at STS,
// reached through AWS_ENDPOINT_URL_STS) and EKS Pod Identity (the agent's
// endpoint and its token file). Every request must carry a signature the
// AWS SDK's v4 signer recomputes, for service logs, xray or aps, with
// credentials not yet expired; credentials expire every two seconds during
// the run, and every log record still arrives exactly once.
func TestSigV4(t *testing.T) {
	for _, c := range []struct {
		name string
		env  func(t *testing.T, f *awsFake, dir string) []string
	}{
		{"IRSA web identity through a local STS", func(t *testing.T, f *awsFake, dir string) []string {
			token := "eyJ-irsa-" + randomHex(8)
			file := filepath.Join(dir, "token")
			if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
			sts := httptest.NewServer(f.stsHandler(token))
			t.Cleanup(sts.Close)
			return []string{"AWS_WEB_IDENTITY_TOKEN_FILE=" + file, "AWS_ROLE_ARN=" + roleARN, "AWS_ROLE_SESSION_NAME=gatewaytest", "AWS_ENDPOINT_URL_STS=" + sts.URL}
		}},
		{"EKS Pod Identity through a local agent", func(t *testing.T, f *awsFake, dir string) []string {
			token := "eks-pod-identity-" + randomHex(8)
			file := filepath.Join(dir, "eks-pod-identity-token")
			if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
			agent := httptest.NewServer(f.podIdentityHandler(token))
			t.Cleanup(agent.Close)
			return []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + agent.URL + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" + file}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			f := newAWSFake(t, credentialsTTL)
			services := httptest.NewServer(f.servicesHandler())
			t.Cleanup(services.Close)
			dir := t.TempDir()
			env := append(cleanAWSEnv(dir), c.env(t, f, dir)...)
			cfg, err := RenderConfig(ctx, awsValues(services.URL))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Start(Options{Config: cfg, IP: replicaIP(0), Name: "fargate-otel-gateway-0", Env: env}, filepath.Join(dir, "gateway"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				r.Kill()
				if t.Failed() {
					t.Logf("gateway log, last lines:\n%s", Tail(r.Logs(), 30))
				}
			})
			hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
			defer hcancel()
			if err := r.WaitHealthy(hctx); err != nil {
				t.Fatal(err)
			}

			logs, spans := sendSignals(ctx, t, r.OTLP(), sendFor)
			if err := poll(ctx, 30*time.Second, func(context.Context) error {
				f.mu.Lock()
				defer f.mu.Unlock()
				if len(f.logs) < logs || f.spans < spans || f.verified["aps"] == 0 {
					return fmt.Errorf("arrived: %d of %d log records, %d of %d spans, %d remote writes; rejected %d", len(f.logs), logs, f.spans, spans, f.verified["aps"], len(f.rejected))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, r := range f.rejected {
				t.Errorf("rejected: %s", r)
			}
			repeats := 0
			for i := 0; i < logs; i++ {
				switch n := f.logs[fmt.Sprintf("line %d", i)]; {
				case n == 0:
					t.Errorf("log record %d lost", i)
				case n > 1:
					repeats += n - 1
				}
			}
			if repeats > 0 {
				t.Errorf("%d log records repeated", repeats)
			}
			if f.spans != spans {
				t.Errorf("%d spans arrived, %d sent", f.spans, spans)
			}
			// Each of the three sigv4auth extensions keeps its own
			// credentials; over the run each set expired several times.
			if min := 3 * int(sendFor/credentialsTTL); len(f.keysUsed) < min {
				t.Errorf("%d access keys signed requests, want at least %d (credentials refreshed as they expire)", len(f.keysUsed), min)
			}
			for _, s := range []string{"logs", "xray", "aps"} {
				if f.verified[s] == 0 {
					t.Errorf("no request to %s verified", s)
				}
			}
			t.Logf("verified requests %v, %d access keys used of %d issued (valid %s each); %d log records each once, %d spans",
				f.verified, len(f.keysUsed), f.issues, credentialsTTL, logs, spans)
		})
	}
}

// cleanAWSEnv leaves the AWS SDK's default chain only what the test gives
// it: no keys, profiles or files of this machine, no instance metadata.
func cleanAWSEnv(dir string) []string {
	env := []string{"AWS_REGION=" + region, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-credentials")}
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"} {
		env = append(env, v+"=")
	}
	return env
}

// sendSignals sends, as a sidecar does, numbered log records every 10ms, a
// span every 50ms and a gauge every 500ms to the gateway for d, and
// returns how many records and spans it sent.
func sendSignals(ctx context.Context, t *testing.T, target string, d time.Duration) (logs, spans int) {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	lc, tc, mc := plogotlp.NewGRPCClient(conn), ptraceotlp.NewGRPCClient(conn), pmetricotlp.NewGRPCClient(conn)
	resource := func(attrs pcommon.Map) {
		attrs.PutStr("service.name", "shop")
		attrs.PutStr("k8s.pod.name", "shop-0")
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
		now := pcommon.NewTimestampFromTime(time.Now())
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		resource(rl.Resource().Attributes())
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.Body().SetStr(fmt.Sprintf("line %d", logs))
		lr.SetTimestamp(now)
		if _, err := lc.Export(ctx, plogotlp.NewExportRequestFromLogs(ld)); err != nil {
			t.Fatalf("the gateway refused a log record: %v", err)
		}
		logs++
		if i%5 == 0 {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			resource(rs.Resource().Attributes())
			sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			var tid pcommon.TraceID
			copy(tid[:], []byte(fmt.Sprintf("trace-%010d", i)))
			sp.SetTraceID(tid)
			sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
			sp.SetName("GET /cart")
			sp.SetStartTimestamp(now)
			sp.SetEndTimestamp(now)
			if _, err := tc.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
				t.Fatalf("the gateway refused a span: %v", err)
			}
			spans++
		}
		if i%50 == 0 {
			md := pmetric.NewMetrics()
			rm := md.ResourceMetrics().AppendEmpty()
			resource(rm.Resource().Attributes())
			m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
			m.SetName("shop.queue.length")
			dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.SetIntValue(int64(i))
			dp.SetTimestamp(now)
			if _, err := mc.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
				t.Fatalf("the gateway refused a metric: %v", err)
			}
		}
	}
	return logs, spans
}
