package callerauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCheckShape(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	exp := t0.Add(time.Hour).Unix()
	claims := func(extra string) string {
		return fmt.Sprintf(`{"aud":[%q],"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}%s}`, aud, exp, extra)
	}
	good := jwt(claims(""))
	header := enc([]byte(`{"alg":"RS256"}`))
	sig := enc([]byte("sig"))
	withHeader := func(h string) string { return enc([]byte(h)) + "." + enc([]byte(claims(""))) + "." + sig }
	withPayload := func(p string) string { return header + "." + enc([]byte(p)) + "." + sig }

	c, err := CheckShape(good, aud, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Claims{Expiry: time.Unix(exp, 0), Namespace: "ns", PodName: "p", PodUID: "u"}); c != want {
		t.Fatalf("claims %+v, want %+v", c, want)
	}
	// The real thing, as the API server issues it (RS256, audience string
	// or list, node claims, ES256).
	for _, ok := range []string{
		withPayload(fmt.Sprintf(`{"aud":%q,"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`, aud, exp)),
		withPayload(fmt.Sprintf(`{"aud":["other",%q],"exp":%d,"iat":1,"iss":"https://kubernetes.default.svc","jti":"j","nbf":1,"sub":"system:serviceaccount:ns:sa","kubernetes.io":{"namespace":"ns","node":{"name":"n","uid":"nu"},"pod":{"name":"p","uid":"u"},"serviceaccount":{"name":"sa","uid":"su"}}}`, aud, exp)),
		withHeader(`{"alg":"ES256","kid":"abc"}`),
		withHeader(`{"alg":"PS512","typ":"JWT"}`),
	} {
		if _, err := CheckShape(ok, aud, t0); err != nil {
			t.Errorf("CheckShape refused a well-shaped token: %v", err)
		}
	}

	for _, tc := range []struct {
		name, token, want string
	}{
		{"opaque", "s3cr3t-opaque-token", "1 dot-separated segments"},
		{"two segments", header + "." + enc([]byte(claims(""))), "2 dot-separated"},
		{"four segments", good + "." + sig, "4 dot-separated"},
		{"empty signature", header + "." + enc([]byte(claims(""))) + ".", "segment 3"},
		{"padded", header + "." + base64.URLEncoding.EncodeToString([]byte(claims("x"))) + "." + sig, "segment 2"},
		{"std alphabet", header + "." + enc([]byte(claims(""))) + ".ab+/", "segment 3"},
		{"spaces", header + ". " + enc([]byte(claims(""))) + "." + sig, "segment 2"},
		{"non-canonical base64", header + "." + enc([]byte(claims(""))) + ".ab", "segment 3"},
		{"too long", jwt(claims(`,"pad":"` + strings.Repeat("x", MaxTokenBytes) + `"`)), "more than"},
		{"header not JSON", withHeader(`RS256`), "header is not a JSON object"},
		{"header array", withHeader(`["RS256"]`), "header is not a JSON object"},
		{"alg none", withHeader(`{"alg":"none"}`), `alg "none"`},
		{"alg HS256", withHeader(`{"alg":"HS256"}`), `alg "HS256"`},
		{"alg missing", withHeader(`{"typ":"JWT"}`), `alg ""`},
		{"alg lower", withHeader(`{"alg":"rs256"}`), "asymmetric"},
		{"payload not JSON", withPayload("hello"), "payload is not a JSON object"},
		{"payload array", withPayload(`[1]`), "payload is not a JSON object"},
		{"aud number", withPayload(fmt.Sprintf(`{"aud":1,"exp":%d}`, exp)), "payload is not"},
		{"no aud", withPayload(fmt.Sprintf(`{"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`, exp)), "does not include"},
		{"API audience", withPayload(fmt.Sprintf(`{"aud":["https://kubernetes.default.svc"],"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`, exp)), "does not include"},
		{"fleet audience", withPayload(fmt.Sprintf(`{"aud":["fargate-otel-fleet"],"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`, exp)), "does not include"},
		{"no exp", withPayload(fmt.Sprintf(`{"aud":[%q],"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`, aud)), "no exp"},
		{"exp float", withPayload(fmt.Sprintf(`{"aud":[%q],"exp":1.5e9}`, aud)), "payload is not"},
		{"exp string", withPayload(fmt.Sprintf(`{"aud":[%q],"exp":"%d"}`, aud, exp)), "payload is not"},
		{"expired", withPayload(fmt.Sprintf(`{"aud":[%q],"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"}}}`, aud, t0.Unix())), "expired at"},
		{"no kubernetes.io", withPayload(fmt.Sprintf(`{"aud":[%q],"exp":%d,"sub":"alice"}`, aud, exp)), "no kubernetes.io namespace"},
		{"unbound", withPayload(fmt.Sprintf(`{"aud":[%q],"exp":%d,"kubernetes.io":{"namespace":"ns","serviceaccount":{"name":"sa","uid":"su"}}}`, aud, exp)), "not bound to a pod"},
		{"pod without uid", withPayload(fmt.Sprintf(`{"aud":[%q],"exp":%d,"kubernetes.io":{"namespace":"ns","pod":{"name":"p"}}}`, aud, exp)), "not bound to a pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckShape(tc.token, aud, t0)
			if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrUnauthenticated and ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "expected a projected service account token") {
				t.Errorf("error %q does not say %q and what was expected", err, tc.want)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error of %d bytes", len(err.Error()))
			}
		})
	}
}

// FuzzCheckShape: nothing crashes it, and whatever it accepts really has the
// audience, a future expiry and a pod.
func FuzzCheckShape(f *testing.F) {
	f.Add(tk("a"))
	f.Add("a.b.c")
	f.Add(jwt(`{"aud":"fargate-otel-nodeproxy","exp":99999999999,"kubernetes.io":{"namespace":"n","pod":{"name":"p","uid":"u"}}}`))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := CheckShape(token, aud, t0)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), token) && len(token) > 40 {
				t.Fatalf("error %v", err)
			}
			return
		}
		if !c.Expiry.After(t0) || c.Namespace == "" || c.PodName == "" || c.PodUID == "" {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
