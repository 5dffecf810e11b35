package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// StatusAnnotation is what the injector writes on a pod it injected
// (injector/annotations.Status).
const StatusAnnotation = "fargate-otel.io/status"

// injectionStatus is the part of the status annotation the doctor reads.
type injectionStatus struct {
	Collector    string   `json:"collector"`
	Containers   []string `json:"containers"`
	KubeletStats string   `json:"kubeletStats"`
}

func readStatus(p *corev1.Pod) (injectionStatus, bool) {
	raw, ok := p.Annotations[StatusAnnotation]
	if !ok {
		return injectionStatus{}, false
	}
	var s injectionStatus
	_ = json.Unmarshal([]byte(raw), &s)
	return s, true
}

type webhookRef struct {
	config string
	hook   admissionv1.MutatingWebhook
}

func (w webhookRef) target() string {
	cc := w.hook.ClientConfig
	if cc.Service != nil {
		port := int32(443)
		if cc.Service.Port != nil {
			port = *cc.Service.Port
		}
		return fmt.Sprintf("service %s/%s:%d%s", cc.Service.Namespace, cc.Service.Name, port, ptr.Deref(cc.Service.Path, ""))
	}
	return "url " + ptr.Deref(cc.URL, "")
}

const installFix = "install the chart: helm install fargate-otel manifests/charts/fargate-otel -n fargate-otel --create-namespace"

func (d *doctor) checkWebhook(ctx context.Context) {
	list, err := d.client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		d.r.add(CheckWebhook, Fail, "cannot list MutatingWebhookConfigurations: "+describe(err), "run the doctor with cluster-admin rights, or ask someone who has them")
		return
	}
	for _, c := range list.Items {
		mine := c.Name == d.o.WebhookConfig
		if d.o.WebhookConfig == "" {
			mine = strings.HasPrefix(c.Name, "fargate-otel") || c.Labels["app.kubernetes.io/name"] == "fargate-otel"
		}
		if !mine {
			continue
		}
		for _, h := range c.Webhooks {
			if handlesPodCreate(h) {
				d.hooks = append(d.hooks, webhookRef{config: c.Name, hook: h})
			}
		}
	}
	if len(d.hooks) == 0 {
		what := "no fargate-otel MutatingWebhookConfiguration handles pod creation"
		if d.o.WebhookConfig != "" {
			what = "MutatingWebhookConfiguration " + d.o.WebhookConfig + " does not exist or does not handle pod creation"
		}
		d.r.add(CheckWebhook, Fail, what, installFix)
		return
	}
	w := d.hooks[0]
	d.r.add(CheckWebhook, OK, fmt.Sprintf("%s: webhook %s, %s, failurePolicy %s", w.config, w.hook.Name, w.target(), ptr.Deref(w.hook.FailurePolicy, admissionv1.Fail)), "")

	d.checkSelected(w)
	d.checkCertificate(ctx, w)
	d.checkAnswers(ctx)
	if d.pod != nil {
		if s, ok := readStatus(d.pod); ok {
			d.r.add(CheckInjected, OK, fmt.Sprintf("collector %s, wrapped containers %v", s.Collector, s.Containers), "")
		} else {
			d.r.add(CheckInjected, Fail, "pod "+d.pod.Name+" has no "+StatusAnnotation+" annotation: it was created before the namespace opted in, while the webhook was down, or was skipped (see the events of its owner)",
				"re-create it once the checks above pass, e.g. kubectl -n "+d.o.Namespace+" rollout restart deployment/<name>")
		}
	}
}

func handlesPodCreate(h admissionv1.MutatingWebhook) bool {
	for _, r := range h.Rules {
		if !containsAny(r.APIGroups, "", "*") || !containsAny(r.Resources, "pods", "*") {
			continue
		}
		for _, op := range r.Operations {
			if op == admissionv1.Create || op == admissionv1.OperationAll {
				return true
			}
		}
	}
	return false
}

func containsAny(list []string, want ...string) bool {
	for _, l := range list {
		for _, w := range want {
			if l == w {
				return true
			}
		}
	}
	return false
}

func (d *doctor) checkSelected(w webhookRef) {
	nsSel, err := metav1.LabelSelectorAsSelector(w.hook.NamespaceSelector)
	if err != nil {
		d.r.add(CheckSelected, Fail, "the webhook's namespaceSelector is invalid: "+err.Error(), "reinstall the chart")
		return
	}
	if w.hook.NamespaceSelector == nil {
		nsSel = labels.Everything()
	}
	if !nsSel.Matches(labels.Set(d.ns.Labels)) {
		d.r.add(CheckSelected, Fail, fmt.Sprintf("namespace %s does not match the webhook's namespaceSelector (%s)", d.ns.Name, nsSel),
			"kubectl label namespace "+d.ns.Name+" fargate-otel.io/inject=enabled\nthen re-create its pods (kubectl -n "+d.ns.Name+" rollout restart deployment)")
		return
	}
	detail := "namespace " + d.ns.Name + " is opted in"
	if d.pod != nil && w.hook.ObjectSelector != nil {
		objSel, err := metav1.LabelSelectorAsSelector(w.hook.ObjectSelector)
		if err == nil && !objSel.Matches(labels.Set(d.pod.Labels)) {
			d.r.add(CheckSelected, Fail, fmt.Sprintf("pod %s does not match the webhook's objectSelector (%s): it opted out", d.pod.Name, objSel),
				"remove the label fargate-otel.io/inject=disabled from the pod template, then re-create the pod")
			return
		}
		detail += ", pod " + d.pod.Name + " is not opted out"
	}
	d.r.add(CheckSelected, OK, detail, "")
}

// checkCertificate checks the caBundle and, when the injector's endpoints
// can be reached from here, that it verifies what the injector serves.
func (d *doctor) checkCertificate(ctx context.Context, w webhookRef) {
	cc := w.hook.ClientConfig
	certFix := "the caBundle and the injector's certificate are out of step: with cert-manager, check its Certificate and the cainjector;\notherwise helm upgrade the release (it regenerates both) and restart the injector"
	pool, leafs, err := parseBundle(cc.CABundle)
	if err != nil {
		d.r.add(CheckCertificate, Fail, "caBundle of "+w.config+": "+err.Error(), certFix)
		return
	}
	now := time.Now()
	for _, c := range leafs {
		if now.After(c.NotAfter) {
			d.r.add(CheckCertificate, Fail, fmt.Sprintf("the caBundle's CA %q expired on %s", c.Subject.CommonName, c.NotAfter.Format(time.DateOnly)), certFix)
			return
		}
	}

	addr, serverName, err := d.webhookAddress(ctx, cc)
	if err != nil {
		d.r.add(CheckCertificate, Fail, err.Error(), "the injector is not running or not ready: kubectl -n "+serviceNamespace(cc)+" get pods,endpointslices; kubectl -n "+serviceNamespace(cc)+" logs deployment/fargate-otel-injector")
		return
	}
	dialer := &net.Dialer{Timeout: min(d.o.Timeout, 3*time.Second)}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			d.r.add(CheckCertificate, Fail, "nothing answers at "+addr+", the injector's endpoint: it is down or restarting",
				"kubectl -n "+serviceNamespace(cc)+" get pods; kubectl -n "+serviceNamespace(cc)+" logs deployment/fargate-otel-injector")
			return
		}
		var netErr net.Error
		var opErr *net.OpError
		if errors.As(err, &netErr) && netErr.Timeout() || errors.As(err, &opErr) && opErr.Op == "dial" {
			d.r.add(CheckCertificate, Skip, fmt.Sprintf("caBundle valid until %s; the injector at %s cannot be reached from here to compare (the API server's answer below tells)", earliest(leafs).Format(time.DateOnly), addr), "")
			return
		}
		d.r.add(CheckCertificate, Fail, fmt.Sprintf("the injector at %s serves a certificate the caBundle does not accept for %s: %v", addr, serverName, err), certFix)
		return
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	_ = conn.Close()
	status, detail := OK, fmt.Sprintf("%s serves a certificate for %s valid until %s, signed by the caBundle", addr, serverName, leaf.NotAfter.Format(time.DateOnly))
	fix := ""
	if leaf.NotAfter.Sub(now) < 14*24*time.Hour {
		status, fix = Warn, "it expires in less than 14 days and was not renewed: check cert-manager or the chart's certificate rotation"
	}
	d.r.add(CheckCertificate, status, detail, fix)
}

func serviceNamespace(cc admissionv1.WebhookClientConfig) string {
	if cc.Service != nil {
		return cc.Service.Namespace
	}
	return "fargate-otel"
}

// webhookAddress is where the API server would send the review: one ready
// endpoint of the Service (as the API server resolves it), or the URL.
func (d *doctor) webhookAddress(ctx context.Context, cc admissionv1.WebhookClientConfig) (addr, serverName string, err error) {
	if cc.URL != nil {
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return "", "", fmt.Errorf("webhook URL %q: %w", *cc.URL, err)
		}
		port := u.Port()
		if port == "" {
			port = "443"
		}
		return net.JoinHostPort(u.Hostname(), port), u.Hostname(), nil
	}
	if cc.Service == nil {
		return "", "", errors.New("the webhook has neither a service nor a URL")
	}
	port := ptr.Deref(cc.Service.Port, 443)
	addr, err = serviceEndpoint(ctx, d.client, cc.Service.Namespace, cc.Service.Name, port)
	return addr, cc.Service.Name + "." + cc.Service.Namespace + ".svc", err
}

// serviceEndpoint resolves a Service port to one ready endpoint address.
func serviceEndpoint(ctx context.Context, c kubernetes.Interface, ns, name string, port int32) (string, error) {
	svc, err := c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("service %s/%s: %s", ns, name, describe(err))
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return "", fmt.Errorf("service %s/%s has no port %d", ns, name, port)
	}
	slices, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return "", fmt.Errorf("EndpointSlices of %s/%s: %s", ns, name, describe(err))
	}
	for _, s := range slices.Items {
		target := int32(0)
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == sp.Name && p.Port != nil {
				target = *p.Port
			}
		}
		if target == 0 && sp.TargetPort.Type == intstr.Int {
			target = sp.TargetPort.IntVal
		}
		for _, e := range s.Endpoints {
			if ptr.Deref(e.Conditions.Ready, true) && len(e.Addresses) > 0 && target != 0 {
				return net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(target))), nil
			}
		}
	}
	return "", fmt.Errorf("service %s/%s has no ready endpoint", ns, name)
}

func parseBundle(b []byte) (*x509.CertPool, []*x509.Certificate, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("empty: the API server cannot verify the injector")
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("not a certificate: %w", err)
		}
		pool.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("holds no PEM certificate")
	}
	return pool, certs, nil
}

func earliest(certs []*x509.Certificate) time.Time {
	t := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// checkAnswers creates a probe pod with dryRun: the API server calls the
// webhook exactly as for a real pod, and nothing is stored.
func (d *doctor) checkAnswers(ctx context.Context) {
	cfg := rest.CopyConfig(d.cfg)
	warnings := &warningCollector{}
	cfg.WarningHandler = warnings
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		d.r.add(CheckReachable, Fail, err.Error(), "")
		return
	}
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "fargate-otel-doctor-", Labels: map[string]string{"app.kubernetes.io/name": "fargate-otel-doctor"}},
		Spec: corev1.PodSpec{
			// A Fargate pod, so that the injector's default scope applies.
			SchedulerName: "fargate-scheduler",
			Containers: []corev1.Container{{
				Name: "probe", Image: "public.ecr.aws/docker/library/busybox:1.36",
				Command: []string{"sleep", "1"}, // a command: no registry look-up needed
			}},
		},
	}
	if d.pod != nil {
		probe.Spec.ServiceAccountName = d.pod.Spec.ServiceAccountName
	}
	tctx, cancel := context.WithTimeout(ctx, d.o.Timeout+30*time.Second)
	defer cancel()
	out, err := client.CoreV1().Pods(d.o.Namespace).Create(tctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "cannot create resource"):
		d.r.add(CheckReachable, Skip, "you may not create pods in "+d.o.Namespace+" (a dry-run create tests the webhook)", "")
		return
	case err != nil:
		d.r.add(CheckReachable, Fail, "a dry-run pod creation failed: "+describe(err),
			"the webhook is failing closed: fix the injector (kubectl -n fargate-otel logs deployment/fargate-otel-injector), or set its failurePolicy to Ignore")
		return
	}
	if s, ok := readStatus(out); ok {
		d.probe = out
		d.r.add(CheckReachable, OK, fmt.Sprintf("a dry-run pod was injected (collector %s, kubelet stats %s)", s.Collector, s.KubeletStats), "")
		return
	}
	detail := "a dry-run pod came back without " + StatusAnnotation
	fix := "with failurePolicy Ignore the API server drops webhook errors silently: check the checks above, the injector's logs\n(kubectl -n fargate-otel logs deployment/fargate-otel-injector) and the API server's"
	if len(warnings.msgs) > 0 {
		detail += "; the injector said: " + strings.Join(warnings.msgs, "; ")
		fix = "the warning says why the probe pod was not injected"
	}
	d.r.add(CheckReachable, Fail, detail, fix)
}

type warningCollector struct{ msgs []string }

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.msgs = append(w.msgs, text)
}
