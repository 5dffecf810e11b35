package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"

	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

const (
	collectorContainer = "otel-collector"
	configEnv          = "FARGATE_OTEL_CONFIG"
	serviceAccountDir  = "/var/run/secrets/kubernetes.io/serviceaccount"
)

func (d *doctor) checkStats(ctx context.Context) {
	// What to look at: the pod when it was injected, else what the injector
	// does to a new pod now.
	subject, what := d.probe, "a new pod"
	if d.pod != nil {
		if _, ok := readStatus(d.pod); ok {
			subject, what = d.pod, "pod "+d.pod.Name
		}
	}
	if subject == nil {
		d.r.add(CheckMode, Skip, "no injected pod to read it from (see the checks above)", "")
		return
	}
	s, _ := readStatus(subject)
	plan := statsPlanOf(subject)
	switch s.KubeletStats {
	case "proxy":
		d.r.add(CheckMode, OK, fmt.Sprintf("proxy for %s: kubelet_stats reads %s", what, plan.endpoint), "")
		d.checkProxyMode(ctx, plan)
	case "direct":
		d.r.add(CheckMode, OK, fmt.Sprintf("direct for %s: kubelet_stats reads %s with the pod's service account, which therefore may read every kubelet", what, plan.endpoint), "")
		d.checkDirectMode(ctx)
	case "off":
		d.r.add(CheckMode, OK, "off for "+what+": no kubelet stats are collected", "")
	default:
		d.r.add(CheckMode, Warn, fmt.Sprintf("the status annotation of %s names no kubelet stats mode (%q)", what, s.KubeletStats), "upgrade the injector and the CLI to the same version")
	}
}

// statsPlan is how a pod's collector reaches /stats/summary, read from the
// pod spec the injector wrote.
type statsPlan struct {
	endpoint string // the kubelet_stats endpoint
	audience string // of the projected token mounted into the collector
	caMap    string // the ConfigMap holding ca.crt in that volume
}

var endpointRE = regexp.MustCompile(`(?m)endpoint:\s*["']?(https://[^"'\s]+/api/v1/nodes/[^"'\s]*)`)

func statsPlanOf(p *corev1.Pod) statsPlan {
	var plan statsPlan
	var c *corev1.Container
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].Name == collectorContainer {
				c = &list[i]
			}
		}
	}
	if c == nil {
		return plan
	}
	for _, e := range c.Env {
		switch e.Name {
		case sidecarconfig.SettingsEnvVar:
			if cc, err := sidecarconfig.Decode([]byte(e.Value)); err == nil && !cc.KubeletStats.Disabled {
				plan.endpoint = cc.KubeletStats.Endpoint
			}
		case configEnv: // a pod injected before pods carried settings
			if m := endpointRE.FindStringSubmatch(e.Value); m != nil {
				plan.endpoint = m[1]
			}
		}
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath != serviceAccountDir {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.Name != m.Name || v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					plan.audience = s.ServiceAccountToken.Audience
				}
				if s.ConfigMap != nil {
					plan.caMap = s.ConfigMap.Name
				}
			}
		}
	}
	return plan
}

func (d *doctor) nodeName() string {
	if d.pod != nil {
		return d.pod.Spec.NodeName
	}
	return ""
}

func (d *doctor) serviceAccount() string {
	if d.pod != nil && d.pod.Spec.ServiceAccountName != "" {
		return d.pod.Spec.ServiceAccountName
	}
	return "default"
}

func (d *doctor) checkProxyMode(ctx context.Context, plan statsPlan) {
	u, err := url.Parse(plan.endpoint)
	svcName, svcNS, _ := strings.Cut(u.Hostname(), ".")
	svcNS, _, _ = strings.Cut(svcNS, ".")
	if err != nil || svcName == "" || svcNS == "" {
		d.r.add(CheckProxyService, Fail, fmt.Sprintf("cannot read the proxy's Service from the endpoint %q", plan.endpoint), "re-inject the pod with a current injector")
		return
	}
	port := int32(443)
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = int32(p)
	}
	relFix := "kubectl -n " + svcNS + " get pods,endpointslices -l app.kubernetes.io/component=nodeproxy; kubectl -n " + svcNS + " logs deployment/" + svcName
	addr, err := serviceEndpoint(ctx, d.client, svcNS, svcName, port)
	if err != nil {
		d.r.add(CheckProxyService, Fail, err.Error(), "fargate-otel-nodeproxy is not running or not ready: "+relFix)
	} else {
		d.r.add(CheckProxyService, OK, fmt.Sprintf("Service %s/%s has a ready endpoint (%s)", svcNS, svcName, addr), "")
	}

	caMap := plan.caMap
	if caMap == "" {
		caMap = rbac.CAConfigMap
	}
	var caPEM []byte
	cm, err := d.client.CoreV1().ConfigMaps(d.o.Namespace).Get(ctx, caMap, metav1.GetOptions{})
	caFix := "the injector publishes it in every opted-in namespace: kubectl -n " + svcNS + " logs deployment/fargate-otel-injector | grep ca-publisher,\nand check that it holds ClusterRole " + rbac.InjectorClusterRole + " and mounts the proxy's CA"
	if err != nil {
		d.r.add(CheckProxyCA, Fail, fmt.Sprintf("ConfigMap %s/%s: %s (the collector cannot verify the proxy without it)", d.o.Namespace, caMap, describe(err)), caFix)
	} else if _, _, err := parseBundle([]byte(cm.Data["ca.crt"])); err != nil {
		d.r.add(CheckProxyCA, Fail, fmt.Sprintf("ConfigMap %s/%s key ca.crt: %v", d.o.Namespace, caMap, err), caFix)
	} else {
		caPEM = []byte(cm.Data["ca.crt"])
		d.r.add(CheckProxyCA, OK, fmt.Sprintf("ConfigMap %s/%s holds the proxy's CA", d.o.Namespace, caMap), "")
	}

	node := d.nodeName()
	proxySA := rbac.ProxyServiceAccount
	allowed, how, err := d.accessAs(ctx, svcNS, proxySA, nil, "", node)
	switch {
	case err != nil:
		d.r.add(CheckProxyRBAC, Skip, "cannot ask as "+svcNS+"/"+proxySA+": "+err.Error(), "")
	case !allowed:
		d.r.add(CheckProxyRBAC, Fail, fmt.Sprintf("service account %s/%s may not get nodes/proxy (%s)", svcNS, proxySA, how),
			"bind it to ClusterRole "+rbac.ProxyClusterRole+" (the chart's ClusterRoleBinding "+rbac.ProxyClusterRole+"; see nodeproxy/rbac/proxy.yaml)")
	default:
		d.r.add(CheckProxyRBAC, OK, fmt.Sprintf("service account %s/%s may get nodes/proxy (%s)", svcNS, proxySA, how), "")
	}

	sa := d.serviceAccount()
	allowed, how, err = d.accessAs(ctx, d.o.Namespace, sa, d.pod, "", node)
	switch {
	case err != nil:
		d.r.add(CheckWorkloadAccess, Skip, "cannot ask as "+d.o.Namespace+"/"+sa+": "+err.Error(), "")
	case allowed:
		d.r.add(CheckWorkloadAccess, Warn, fmt.Sprintf("service account %s/%s may get nodes/proxy (%s): that is exec into every pod on every node, and mode proxy does not need it", d.o.Namespace, sa, how),
			"find and remove the grant: kubectl get clusterrolebindings,rolebindings -A -o wide | grep "+sa)
	default:
		d.r.add(CheckWorkloadAccess, OK, fmt.Sprintf("service account %s/%s may not get nodes/proxy (%s), as it should be", d.o.Namespace, sa, how), "")
	}

	if d.pod == nil || node == "" {
		d.r.add(CheckStatsRequest, Skip, "pass --pod (a running, injected pod) to make a real request as its collector", "")
		return
	}
	if caPEM == nil || plan.audience == "" {
		d.r.add(CheckStatsRequest, Skip, "the pod has no proxy token or CA (see above)", "")
		return
	}
	d.proxyRequest(ctx, plan, svcNS, svcName, port, caPEM, node, u.Hostname())
}

// proxyRequest does what the pod's collector does: a token bound to the pod
// with the proxy's audience, the CA from the namespace, GET stats/summary.
func (d *doctor) proxyRequest(ctx context.Context, plan statsPlan, svcNS, svcName string, port int32, caPEM []byte, node, serverName string) {
	token, err := d.token(ctx, d.o.Namespace, d.serviceAccount(), d.pod, plan.audience)
	if err != nil {
		d.r.add(CheckStatsRequest, Skip, "cannot get a token for the pod: "+err.Error(), "")
		return
	}
	base := d.o.ProxyURL
	if base == "" {
		local, stop, err := d.forwardToService(ctx, svcNS, svcName, port)
		if err != nil {
			d.r.add(CheckStatsRequest, Skip, "cannot reach fargate-otel-nodeproxy from here: "+err.Error()+" (run inside the cluster with --proxy-url)", "")
			return
		}
		defer stop()
		base = "https://" + local
	}
	pool, _, _ := parseBundle(caPEM)
	hc := &http.Client{Timeout: d.o.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}}}
	path := "/api/v1/nodes/" + node + "/proxy/stats/summary"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		d.r.add(CheckStatsRequest, Fail, "GET "+path+" through the proxy: "+err.Error(),
			"if this is a certificate error, the CA in ConfigMap "+plan.caMap+" does not match the proxy's certificate: restart the injector to republish it")
		return
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	d.statsAnswer(path+" through the proxy", resp.StatusCode, body, node)
}

func (d *doctor) statsAnswer(what string, code int, body []byte, node string) {
	if code != http.StatusOK {
		msg := strings.TrimSpace(string(body[:min(len(body), 400)]))
		var status struct {
			Kind    string `json:"kind"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &status) == nil && status.Kind == "Status" && status.Message != "" {
			msg = status.Message
		}
		d.r.add(CheckStatsRequest, Fail, fmt.Sprintf("GET %s: HTTP %d: %s", what, code, msg), "the answer above says what was refused and why")
		return
	}
	var s struct {
		Node struct {
			NodeName string `json:"nodeName"`
		} `json:"node"`
		Pods []json.RawMessage `json:"pods"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Node.NodeName == "" {
		d.r.add(CheckStatsRequest, Fail, fmt.Sprintf("GET %s: HTTP 200 but not a stats summary (%d bytes)", what, len(body)), "check what answers on that path")
		return
	}
	d.r.add(CheckStatsRequest, OK, fmt.Sprintf("GET %s: HTTP 200, %d bytes, node %s, %d pod(s)", what, len(body), s.Node.NodeName, len(s.Pods)), "")
}

func (d *doctor) checkDirectMode(ctx context.Context) {
	sa := d.serviceAccount()
	node := d.nodeName()
	allowed, how, err := d.accessAs(ctx, d.o.Namespace, sa, d.pod, "", node)
	fix := "the injector grants it through ClusterRoleBinding " + rbac.DirectBinding + ": check that it lists " + d.o.Namespace + "/" + sa + ",\n" +
		"that ClusterRole " + rbac.DirectClusterRole + " exists, and that the injector holds " + rbac.InjectorDirectClusterRole + " (kubectl -n fargate-otel logs deployment/fargate-otel-injector | grep direct-binding)"
	switch {
	case err != nil:
		d.r.add(CheckWorkloadAccess, Skip, "cannot ask as "+d.o.Namespace+"/"+sa+": "+err.Error(), "")
	case !allowed:
		d.r.add(CheckWorkloadAccess, Fail, fmt.Sprintf("service account %s/%s may not get nodes/proxy (%s)", d.o.Namespace, sa, how), fix)
	default:
		d.r.add(CheckWorkloadAccess, OK, fmt.Sprintf("service account %s/%s may get nodes/proxy (%s)", d.o.Namespace, sa, how), "")
	}
	if d.pod == nil || node == "" {
		d.r.add(CheckStatsRequest, Skip, "pass --pod (a scheduled, injected pod) to make a real request as its collector", "")
		return
	}
	token, err := d.token(ctx, d.o.Namespace, sa, d.pod, "")
	if err != nil {
		d.r.add(CheckStatsRequest, Skip, "cannot get a token for the pod: "+err.Error(), "")
		return
	}
	cfg := rest.AnonymousClientConfig(d.cfg)
	cfg.BearerToken = token
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		d.r.add(CheckStatsRequest, Fail, err.Error(), "")
		return
	}
	path := "/api/v1/nodes/" + node + "/proxy/stats/summary"
	var code int
	body, err := client.CoreV1().RESTClient().Get().AbsPath(path).Timeout(d.o.Timeout).Do(ctx).StatusCode(&code).Raw()
	if err != nil && code == 0 {
		d.r.add(CheckStatsRequest, Fail, "GET "+path+": "+err.Error(), "")
		return
	}
	if err != nil && len(body) == 0 {
		body = []byte(describe(err))
	}
	d.statsAnswer(path+" through the API server", code, body, node)
}

// accessAs asks whether namespace/sa may get nodes/proxy, as that service
// account itself (a SelfSubjectAccessReview with a token requested for it,
// bound to pod when given); when the caller may not request tokens, it asks
// with a SubjectAccessReview instead. how says which.
func (d *doctor) accessAs(ctx context.Context, namespace, sa string, pod *corev1.Pod, audience, node string) (allowed bool, how string, err error) {
	attrs := &authzv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: node}
	token, terr := d.token(ctx, namespace, sa, pod, audience)
	if terr == nil {
		cfg := rest.AnonymousClientConfig(d.cfg)
		cfg.BearerToken = token
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return false, "", err
		}
		r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}, metav1.CreateOptions{})
		if err != nil {
			return false, "", fmt.Errorf("SelfSubjectAccessReview: %s", describe(err))
		}
		return r.Status.Allowed, "SelfSubjectAccessReview", nil
	}
	user := "system:serviceaccount:" + namespace + ":" + sa
	r, err := d.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}, ResourceAttributes: attrs,
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("no token (%s) and no SubjectAccessReview (%s)", describe(terr), describe(err))
	}
	return r.Status.Allowed, "SubjectAccessReview", nil
}

// token requests a short-lived token for namespace/sa, bound to pod when
// given, for audience ("" is the API server's).
func (d *doctor) token(ctx context.Context, namespace, sa string, pod *corev1.Pod, audience string) (string, error) {
	spec := authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}
	if audience != "" {
		spec.Audiences = []string{audience}
	}
	if pod != nil {
		spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := d.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("service account %s/%s does not exist", namespace, sa)
		}
		return "", fmt.Errorf("%s", describe(err))
	}
	return tr.Status.Token, nil
}

// forwardToService port-forwards a local port to a ready pod behind the
// Service, as kubectl port-forward does.
func (d *doctor) forwardToService(ctx context.Context, ns, name string, port int32) (string, func(), error) {
	svc, err := d.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("service %s/%s: %s", ns, name, describe(err))
	}
	slices, err := d.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return "", nil, fmt.Errorf("EndpointSlices: %s", describe(err))
	}
	portName := ""
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			portName = p.Name
		}
	}
	for _, s := range slices.Items {
		target := int32(0)
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == portName && p.Port != nil {
				target = *p.Port
			}
		}
		for _, e := range s.Endpoints {
			if !ptr.Deref(e.Conditions.Ready, true) || e.TargetRef == nil || e.TargetRef.Kind != "Pod" || target == 0 {
				continue
			}
			return portForward(ctx, d.cfg, d.client, ns, e.TargetRef.Name, int(target))
		}
	}
	return "", nil, fmt.Errorf("no ready pod behind Service %s/%s", ns, name)
}
