package cluster

import (
	"context"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { os.Exit(RunInNetNS(m)) }

// One control plane serves the tests of this file: starting one costs
// seconds.
func TestControlPlane(t *testing.T) {
	cp := StartControlPlaneT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("namespace", func(t *testing.T) {
		ns, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ns.UID == "" {
			t.Fatalf("namespace has no UID: %+v", ns)
		}
	})

	t.Run("token request and review with an audience", func(t *testing.T) {
		sa, err := cp.Client.CoreV1().ServiceAccounts("probe").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "collector"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		const audience = "fargate-otel-nodeproxy"
		tr, err := cp.Client.CoreV1().ServiceAccounts("probe").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		review := func(audiences ...string) *authenticationv1.TokenReview {
			t.Helper()
			r, err := cp.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
				Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token, Audiences: audiences},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		ok := review(audience)
		if !ok.Status.Authenticated || ok.Status.User.Username != "system:serviceaccount:probe:collector" || !slices.Contains(ok.Status.Audiences, audience) {
			t.Errorf("review with the token's audience: %+v", ok.Status)
		}
		if api := review(ServiceAccountIssuer); api.Status.Authenticated {
			t.Errorf("a %q token passed a review for the API server's audience: %+v", audience, api.Status)
		}
	})

	t.Run("nodes proxy reaches a fake kubelet", func(t *testing.T) {
		var clientCN string
		fk, err := cp.StartFakeKubelet(ctx, "fake-node", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
			if r.URL.Path != "/stats/summary" {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte(`{"node":{"nodeName":"fake-node"}}`))
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fk.Close(ctx) }()
		body, err := cp.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/fake-node/proxy/stats/summary").DoRaw(ctx)
		if err != nil {
			t.Fatalf("GET nodes/fake-node/proxy/stats/summary: %v: %s", err, body)
		}
		if string(body) != `{"node":{"nodeName":"fake-node"}}` {
			t.Errorf("body = %s", body)
		}
		if clientCN != cp.KubeletClient.Cert.Subject.CommonName {
			t.Errorf("the fake kubelet saw client %q, want the API server's kubelet client %q", clientCN, cp.KubeletClient.Cert.Subject.CommonName)
		}
	})
}
