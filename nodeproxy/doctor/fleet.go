package doctor

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/fleet/api"
)

// CheckFleet is the stale-sidecar check, as `linkerd check --proxy` does
// for its proxies: every running pod of the namespace whose sidecar has a
// fleet agent is connected to the fleet server, healthy, and runs this
// release and the live settings it should. The gateway's replicas are
// fleet agents too (with the fleet's env), but not sidecars: they are not
// counted here (a pod the injector did not make, or an agent of kind
// gateway, is left out).
const CheckFleet = "fleet sidecars"

// fleetEndpointEnv is the env var the injector gives a sidecar's agent.
const fleetEndpointEnv = "FARGATE_OTEL_FLEET_ENDPOINT"

func (d *doctor) checkFleet(ctx context.Context) {
	pods, err := d.client.CoreV1().Pods(d.o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		d.r.add(CheckFleet, Fail, describe(err), "the doctor needs list on pods of the namespace")
		return
	}
	var want []corev1.Pod
	releaseNS := ""
	for _, p := range pods.Items {
		if d.o.Pod != "" && p.Name != d.o.Pod {
			continue
		}
		ep := fleetEndpoint(&p)
		if ep == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if _, injected := p.Annotations[StatusAnnotation]; !injected {
			// Not a sidecar: the gateway's replicas have the fleet env too.
			continue
		}
		want = append(want, p)
		if releaseNS == "" {
			releaseNS = endpointNamespace(ep)
		}
	}
	if len(want) == 0 {
		d.r.add(CheckFleet, Skip, "no running pod here has a fleet agent (injected with the fleet on)", "")
		return
	}
	client := api.Client{BaseURL: d.o.FleetURL}
	if d.o.FleetURL == "" {
		if releaseNS == "" {
			releaseNS = api.DefaultNamespace
		}
		c, stop, err := api.PortForward(ctx, d.cfg, releaseNS)
		if err != nil {
			// Telemetry flows without the fleet: a warning, not a failure.
			d.r.add(CheckFleet, Warn, "cannot reach the fleet server: "+err.Error(),
				"check it runs: kubectl -n "+releaseNS+" get pods -l "+api.PodSelector+"\nthe sidecars keep running their last config meanwhile")
			return
		}
		defer stop()
		client = c
	}
	fctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	f, err := client.Fleet(fctx, api.Filter{Namespace: d.o.Namespace})
	if err != nil {
		d.r.add(CheckFleet, Warn, err.Error(), "check the fleet server's logs: kubectl -n "+releaseNS+" logs -l "+api.PodSelector)
		return
	}
	detail, status, fix := judgeFleet(want, f)
	d.r.add(CheckFleet, status, detail, fix)
}

// judgeFleet is the pure part: what the fleet's view says about the pods.
func judgeFleet(pods []corev1.Pod, f api.Fleet) (string, Status, string) {
	byUID := map[string]api.Agent{}
	for _, a := range f.Agents {
		byUID[a.UID] = a
	}
	var missing, unhealthy, stale []string
	counted := 0
	for _, p := range pods {
		a, ok := byUID[string(p.UID)]
		if ok && a.Kind == api.KindGateway {
			continue // a gateway replica: not a sidecar, stale or not
		}
		counted++
		switch {
		case !ok || !a.Connected:
			missing = append(missing, p.Name)
		case a.Unhealthy():
			why := a.Health.LastError
			if why == "" {
				why = a.RemoteConfig.Error + a.RemoteConfig.DesiredError
			}
			unhealthy = append(unhealthy, strings.TrimSpace(p.Name+" "+paren(why)))
		case len(a.Stale) > 0:
			stale = append(stale, p.Name+" ("+strings.Join(a.Stale, ", ")+")")
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("not connected: %s", list(missing)))
	}
	if len(unhealthy) > 0 {
		parts = append(parts, fmt.Sprintf("unhealthy: %s", list(unhealthy)))
	}
	if len(stale) > 0 {
		parts = append(parts, fmt.Sprintf("stale: %s", list(stale)))
	}
	partial := ""
	if f.Partial() {
		partial = " (a fleet server replica could not be read)"
	}
	switch {
	case len(unhealthy) > 0:
		return strings.Join(parts, "; ") + partial, Fail,
			"fargate-otel fleet -n <namespace> --unhealthy -o json shows each sidecar's errors;\n" +
				"kubectl logs <pod> -c otel-collector says more"
	case len(missing) > 0 || len(stale) > 0:
		// A sidecar off the fleet still sends its telemetry with its last
		// config: a warning.
		return strings.Join(parts, "; ") + partial, Warn,
			"not connected: kubectl logs <pod> -c otel-collector | grep -i fleet says why;\n" +
				"stale version: re-create the pods (kubectl rollout restart) to get this release's sidecar;\n" +
				"stale config: the live settings are not applied yet, or failed: fargate-otel fleet --stale -o json says why"
	}
	return fmt.Sprintf("%d sidecars connected, healthy and up to date%s", counted, partial), OK, ""
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func list(s []string) string {
	slices.Sort(s)
	if len(s) > 5 {
		return strings.Join(s[:5], ", ") + fmt.Sprintf(" and %d more", len(s)-5)
	}
	return strings.Join(s, ", ")
}

func fleetEndpoint(p *corev1.Pod) string {
	for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name == fleetEndpointEnv {
				return e.Value
			}
		}
	}
	return ""
}

// endpointNamespace is the namespace of wss://<service>.<namespace>.svc:...
func endpointNamespace(ep string) string {
	u, err := url.Parse(ep)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) >= 2 {
		return parts[1]
	}
	return ""
}
