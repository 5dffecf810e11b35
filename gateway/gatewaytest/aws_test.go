package gatewaytest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// The AWS side of the SigV4 tests, all on 127.0.0.1: a credentials issuer
// (STS's AssumeRoleWithWebIdentity for IRSA, or the EKS Pod Identity
// agent's endpoint) that hands out short-lived credentials, and the
// CloudWatch Logs, X-Ray and Amazon Managed Prometheus endpoints, which
// accept a request only when the AWS SDK's own v4 signer, given the
// credentials issued, computes the very signature the request carries.

const (
	region       = "eu-west-1"
	roleARN      = "arn:aws:iam::123456789012:role/fargate-otel-gateway"
	logGroup     = "/fargate-otel/gatewaytest"
	logStream    = "fargate-otel"
	workspace    = "ws-gatewaytest"
	amzDateShape = "20060102T150405Z"
)

// issued is one set of credentials handed out.
type issued struct {
	secret, token string
	expires       time.Time
}

// awsFake is the issuer and the service endpoints.
type awsFake struct {
	t   *testing.T
	ttl time.Duration

	mu     sync.Mutex
	creds  map[string]issued // by access key ID
	issues int
	// What the endpoints accepted.
	verified map[string]int // requests by service
	keysUsed map[string]bool
	logs     map[string]int // log record body -> times
	spans    int
	rejected []string
}

func newAWSFake(t *testing.T, ttl time.Duration) *awsFake {
	return &awsFake{t: t, ttl: ttl, creds: map[string]issued{}, verified: map[string]int{}, keysUsed: map[string]bool{}, logs: map[string]int{}}
}

// issue hands out new credentials valid for ttl.
func (f *awsFake) issue() (id string, c issued) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issues++
	id = fmt.Sprintf("ASIAGATEWAYTEST%05d", f.issues)
	c = issued{secret: randomHex(20), token: "session-" + randomHex(16), expires: time.Now().Add(f.ttl).UTC().Truncate(time.Second)}
	f.creds[id] = c
	return id, c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stsHandler answers AssumeRoleWithWebIdentity for the token in tokenFile's
// content.
func (f *awsFake) stsHandler(token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("RoleArn") != roleARN || r.Form.Get("WebIdentityToken") != token {
			f.reject("sts: unexpected %s %s role %q token %q", r.Form.Get("Action"), r.URL, r.Form.Get("RoleArn"), r.Form.Get("WebIdentityToken"))
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		id, c := f.issue()
		w.Header().Set("Content-Type", "text/xml")
		_, _ = fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:fargate-otel:fargate-otel-gateway</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/fargate-otel-gateway/gatewaytest</Arn>
      <AssumedRoleId>AROAGATEWAYTEST:gatewaytest</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>gatewaytest</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, id, c.secret, c.token, c.expires.Format(time.RFC3339))
	})
}

// podIdentityHandler answers as the EKS Pod Identity agent does, to the
// token of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
func (f *awsFake) podIdentityHandler(token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token {
			f.reject("pod identity: Authorization %q", r.Header.Get("Authorization"))
			http.Error(w, `{"code":"AccessDeniedException"}`, http.StatusForbidden)
			return
		}
		id, c := f.issue()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": id, "SecretAccessKey": c.secret, "Token": c.token,
			"AccountId": "123456789012", "Expiration": c.expires.Format(time.RFC3339),
		})
	})
}

func (f *awsFake) reject(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = append(f.rejected, fmt.Sprintf(format, args...))
}

// servicesHandler is CloudWatch Logs' and X-Ray's OTLP endpoints and AMP's
// remote write, by path.
func (f *awsFake) servicesHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, r *http.Request) {
		body, ok := f.accept(w, r, "logs")
		if !ok {
			return
		}
		if g, s := r.Header.Get("x-aws-log-group"), r.Header.Get("x-aws-log-stream"); g != logGroup || s != logStream {
			f.reject("logs: log group %q stream %q", g, s)
			http.Error(w, "ResourceNotFoundException", http.StatusBadRequest)
			return
		}
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			f.reject("logs: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		rls := req.Logs().ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					f.logs[lrs.At(k).Body().AsString()]++
				}
			}
		}
		f.mu.Unlock()
		out, _ := plogotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, ok := f.accept(w, r, "xray")
		if !ok {
			return
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			f.reject("xray: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.spans += req.Traces().SpanCount()
		f.mu.Unlock()
		out, _ := ptraceotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("POST /workspaces/"+workspace+"/api/v1/remote_write", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.accept(w, r, "aps"); ok {
			w.WriteHeader(http.StatusOK)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.reject("unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	return mux
}

// accept reads the request's body and checks its signature; on failure it
// answers 403 as AWS does and returns false. The body returned is
// uncompressed.
func (f *awsFake) accept(w http.ResponseWriter, r *http.Request, service string) ([]byte, bool) {
	raw, err := io.ReadAll(r.Body)
	if err == nil {
		err = f.verify(r, raw, service)
	}
	if err != nil {
		f.reject("%s: %v", service, err)
		http.Error(w, "InvalidSignatureException: "+err.Error(), http.StatusForbidden)
		return nil, false
	}
	body := raw
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			f.reject("%s: gzip: %v", service, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return nil, false
		}
	}
	return body, true
}

// verify recomputes the request's SigV4 signature with the AWS SDK's signer
// from the credentials issued for its access key and compares it.
func (f *awsFake) verify(r *http.Request, body []byte, service string) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("not signed with SigV4: Authorization %q", auth)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return fmt.Errorf("credential scope %q", fields["Credential"])
	}
	id, scopeRegion, scopeService := scope[0], scope[2], scope[3]
	if scopeRegion != region || scopeService != service {
		return fmt.Errorf("signed for %s in %s, want %s in %s", scopeService, scopeRegion, service, region)
	}
	f.mu.Lock()
	c, known := f.creds[id]
	f.mu.Unlock()
	if !known {
		return fmt.Errorf("unknown access key %s", id)
	}
	signed, err := time.Parse(amzDateShape, r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	if !signed.Before(c.expires) {
		return fmt.Errorf("ExpiredTokenException: %s signed at %s, expired at %s", id, signed.Format(time.RFC3339), c.expires.Format(time.RFC3339))
	}
	if got := r.Header.Get("X-Amz-Security-Token"); got != c.token {
		return fmt.Errorf("session token %q, issued %q", got, c.token)
	}
	// The same request, with only the headers that were signed.
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h == "host" || h == "content-length" {
			continue
		}
		again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	again.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: c.secret, SessionToken: c.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, region, signed); err != nil {
		return err
	}
	if want := again.Header.Get("Authorization"); want != auth {
		return fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, want)
	}
	f.mu.Lock()
	f.verified[service]++
	f.keysUsed[id] = true
	f.mu.Unlock()
	return nil
}

// awsValues are the chart values of a gateway that sends to AWS, the
// endpoints overridden to the fake's.
func awsValues(endpoint string) map[string]any {
	return map[string]any{
		// Traces straight to X-Ray (no routing tier, no DNS needed).
		"gateway": map[string]any{"tailSampling": map[string]any{"enabled": false}},
		"destinations": map[string]any{"aws": map[string]any{
			"enabled": true,
			"region":  region,
			"logs":    map[string]any{"logGroup": logGroup, "logStream": logStream, "endpoint": endpoint + "/v1/logs"},
			"traces":  map[string]any{"endpoint": endpoint + "/v1/traces"},
			"metrics": map[string]any{"enabled": true, "workspaceId": workspace, "endpoint": endpoint + "/workspaces/" + workspace + "/api/v1/remote_write"},
		}},
	}
}

// TestTheFakeRejectsWhatAWSRejects: the endpoints' check fails a request
// signed with another secret, for another service, with expired
// credentials or with the body changed after signing, and passes the
// same request signed right.
func TestTheFakeRejectsWhatAWSRejects(t *testing.T) {
	f := newAWSFake(t, time.Minute)
	id, c := f.issue()
	body := []byte("payload")
	sign := func(secret, service string, at time.Time, sent []byte) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4318/v1/logs", bytes.NewReader(sent))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.ContentLength = int64(len(sent))
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: c.token}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, at); err != nil {
			t.Fatal(err)
		}
		return req
	}
	now := time.Now()
	if err := f.verify(sign(c.secret, "logs", now, body), body, "logs"); err != nil {
		t.Fatalf("a right signature was refused: %v", err)
	}
	for name, req := range map[string]*http.Request{
		"another secret":  sign(c.secret+"x", "logs", now, body),
		"another service": sign(c.secret, "xray", now, body),
		"expired":         sign(c.secret, "logs", c.expires.Add(time.Second), body),
		"body changed":    sign(c.secret, "logs", now, []byte("PAYLOAD")),
	} {
		sent, _ := io.ReadAll(req.Body)
		if err := f.verify(req, sent, "logs"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
