package fleettest

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
)

// Audience is the audience of the fleet's tokens (server.Audience; not
// imported, so that the server's own tests may use this package).
const Audience = "fargate-otel-fleet"

// ProjectedToken is shaped like a projected service account token of the
// pod (a JSON header, the API server's claims, a 256-byte RS256
// signature), of audience Audience and service account "app", valid for a
// day: callerauth's shape check passes it, and hashing it costs what it
// costs in a cluster. Only Review knows it is not signed.
func ProjectedToken(namespace, pod, uid string) string {
	enc := base64.RawURLEncoding.EncodeToString
	exp := time.Now().Add(24 * time.Hour).Unix()
	claims := fmt.Sprintf(`{"aud":[%q],"exp":%d,"iat":%d,"iss":"https://kubernetes.default.svc.cluster.local","kubernetes.io":{"namespace":%q,"pod":{"name":%q,"uid":%q},"serviceaccount":{"name":"app","uid":"sa-uid"}},"nbf":%d,"sub":"system:serviceaccount:%s:app"}`,
		Audience, exp, exp-3600, namespace, pod, uid, exp-3600, namespace)
	sig := make([]byte, 256)
	copy(sig, uid)
	return enc([]byte(`{"alg":"RS256","kid":"test-key-1"}`)) + "." + enc([]byte(claims)) + "." + enc(sig)
}

// Review answers a TokenReview as the API server does for a token made by
// ProjectedToken: the pod it names, with service account "app". It stands
// in for the API server where the test or bench is about the fleet
// server; callerauth in front of it is the real one.
func Review(_ context.Context, token string, aud []string) (authnv1.TokenReviewStatus, error) {
	c, err := callerauth.CheckShape(token, Audience, time.Now())
	if err != nil {
		return authnv1.TokenReviewStatus{Error: "invalid bearer token"}, nil
	}
	return authnv1.TokenReviewStatus{Authenticated: true, Audiences: aud, User: authnv1.UserInfo{
		Username: "system:serviceaccount:" + c.Namespace + ":app",
		Extra: map[string]authnv1.ExtraValue{
			callerauth.ExtraPodName: {c.PodName}, callerauth.ExtraPodUID: {c.PodUID},
		},
	}}, nil
}
