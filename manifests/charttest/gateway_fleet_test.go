package charttest

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The gateway's replicas as agents of the fleet (docs/gateway.md): with
// gateway.enabled and the fleet on, the Deployment carries the agent's env
// (the names the sidecar's agent reads), a projected token of the fleet's
// audience and the fleet's CA, and nothing more: no RBAC, no API token.

// gatewayPod is the gateway Deployment's pod spec and its container.
func gatewayPod(t *testing.T, objs objects) (corev1.PodSpec, corev1.Container) {
	t.Helper()
	var d appsv1.Deployment
	objs.get(t, "Deployment", gatewayName, &d)
	return d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0]
}

// envOf is the container's env: values, and field paths of the Downward API.
func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	return env
}

func fleetArg(t *testing.T, objs objects, name string) string {
	t.Helper()
	var d appsv1.Deployment
	objs.get(t, "Deployment", "fargate-otel-fleet", &d)
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func TestGatewayIsAFleetAgent(t *testing.T) {
	objs := render(t, withGateway(map[string]any{"clusterName": "prod"}))
	pod, c := gatewayPod(t, objs)
	env := envOf(c)
	inj := config(t, objs).Fleet
	// The sidecars' endpoint and audience: one fleet server for both.
	if env["FARGATE_OTEL_FLEET_ENDPOINT"] != inj.Endpoint || inj.Endpoint == "" {
		t.Errorf("endpoint %q, the sidecars' %q", env["FARGATE_OTEL_FLEET_ENDPOINT"], inj.Endpoint)
	}
	for name, want := range map[string]string{
		"POD_NAME": "field:metadata.name", "POD_UID": "field:metadata.uid", "POD_NAMESPACE": "field:metadata.namespace",
		"NODE_NAME": "field:spec.nodeName", "FARGATE_OTEL_CLUSTER_NAME": "prod",
	} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	tokenFile, caFile := env["FARGATE_OTEL_FLEET_TOKEN_FILE"], env["FARGATE_OTEL_FLEET_CA_FILE"]
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == path.Dir(tokenFile) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || !mount.ReadOnly || path.Dir(caFile) != mount.MountPath {
		t.Fatalf("token %q and CA %q: want both in one read-only mount, got %+v", tokenFile, caFile, c.VolumeMounts)
	}
	var vol *corev1.Volume
	for i, v := range pod.Volumes {
		if v.Name == mount.Name {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil || vol.Projected == nil {
		t.Fatalf("volume %s: want a projected volume", mount.Name)
	}
	var token *corev1.ServiceAccountTokenProjection
	var ca *corev1.SecretProjection
	for _, s := range vol.Projected.Sources {
		switch {
		case s.ServiceAccountToken != nil:
			token = s.ServiceAccountToken
		case s.Secret != nil:
			ca = s.Secret
		default:
			t.Errorf("unexpected projection %+v", s)
		}
	}
	if token == nil || token.Audience != inj.Audience || token.Path != path.Base(tokenFile) || token.ExpirationSeconds == nil || *token.ExpirationSeconds > 3600 {
		t.Errorf("token projection %+v: want audience %q at %s, an hour at most", token, inj.Audience, path.Base(tokenFile))
	}
	// The CA the fleet server's own certificate is issued with, from its
	// serving Secret: only ca.crt, and optional (the Secret is filled
	// after the chart is installed).
	if ca == nil || ca.Name != "fargate-otel-fleet-tls" || len(ca.Items) != 1 || ca.Items[0].Key != "ca.crt" || ca.Items[0].Path != path.Base(caFile) || ca.Optional == nil || !*ca.Optional {
		t.Errorf("CA projection %+v: want only ca.crt of Secret fargate-otel-fleet-tls, optional", ca)
	}
	if !slices.Contains(objs.names(), "Secret/fargate-otel-fleet-tls") {
		t.Error("the chart does not create the Secret the gateway's CA comes from")
	}
	var fleet appsv1.Deployment
	objs.get(t, "Deployment", "fargate-otel-fleet", &fleet)
	if !slices.ContainsFunc(fleet.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == ca.Name
	}) {
		t.Error("the fleet server does not serve with the Secret the gateway verifies it with")
	}

	// The fleet server knows the gateway by its service account.
	if got := fleetArg(t, objs, "gateway-service-account"); got != pod.ServiceAccountName || got != gatewayName {
		t.Errorf("--gateway-service-account=%q, the gateway runs as %q", got, pod.ServiceAccountName)
	}
	// Least privilege: still no API token, and no binding names the
	// gateway's service account.
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the gateway mounts an API token")
	}
	for _, u := range objs {
		if k := u.GetKind(); k != "RoleBinding" && k != "ClusterRoleBinding" {
			continue
		}
		data, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		var b rbacv1.RoleBinding
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == gatewayName {
				t.Errorf("%s/%s grants the gateway's service account %s", u.GetKind(), u.GetName(), b.RoleRef.Name)
			}
		}
	}

	// With cert-manager the same Secret holds the CA (the Certificate's).
	objs = render(t, withGateway(map[string]any{"certManager": map[string]any{"enabled": true}}))
	if u := objs.find("Certificate", "fargate-otel-fleet"); u == nil || !strings.Contains(mustJSON(t, u.Object), `"secretName":"fargate-otel-fleet-tls"`) {
		t.Error("with cert-manager, no Certificate fills fargate-otel-fleet-tls")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGatewayWithoutTheFleet(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"fleet.enabled=false": withGateway(map[string]any{"fleet": map[string]any{"enabled": false}}),
		"no mode proxy":       withGateway(map[string]any{"kubeletStats": map[string]any{"mode": "off", "allowedModes": []string{"off"}}}),
	} {
		t.Run(name, func(t *testing.T) {
			pod, c := gatewayPod(t, render(t, values))
			for n := range envOf(c) {
				if strings.HasPrefix(n, "FARGATE_OTEL_FLEET_") || n == "POD_UID" || n == "NODE_NAME" {
					t.Errorf("env %s without the fleet: the gateway must run as it did", n)
				}
			}
			for _, v := range pod.Volumes {
				if v.Projected != nil || v.Secret != nil {
					t.Errorf("volume %+v without the fleet", v)
				}
			}
		})
	}
	// The fleet without the gateway: no agent can be a gateway.
	if got := fleetArg(t, render(t, nil), "gateway-service-account"); got != "-" {
		t.Errorf("without the gateway, --gateway-service-account=%q, want -", got)
	}
}
