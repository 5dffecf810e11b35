// Package doctor checks, for a namespace or a pod, everything that stands
// between a pod and its telemetry: the injector's webhook (registered,
// selecting the namespace, its certificate, answering), the kubelet stats
// mode in use and the path to /stats/summary in that mode (RBAC seen as the
// service accounts themselves, with SelfSubjectAccessReview, then a real
// request). Each failed check says what to change. `fargate-otel doctor`
// prints the report.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Status of one check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
	Skip Status = "skip"
)

// Check is one line of the report.
type Check struct {
	Name   string
	Status Status
	Detail string
	// Fix says what to change, for Fail and Warn.
	Fix string
}

// Report is every check, in order.
type Report struct {
	Namespace, Pod string
	Checks         []Check
}

// Failed is the number of failed checks.
func (r *Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == Fail {
			n++
		}
	}
	return n
}

// Find returns the check named name.
func (r *Report) Find(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func (r *Report) add(name string, s Status, detail, fix string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: s, Detail: detail, Fix: fix})
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	head := "fargate-otel doctor: namespace " + r.Namespace
	if r.Pod != "" {
		head += ", pod " + r.Pod
	}
	b.WriteString(head + "\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "  %-4s  %-22s %s\n", c.Status, c.Name, c.Detail)
		if c.Fix != "" && (c.Status == Fail || c.Status == Warn) {
			for i, line := range strings.Split(c.Fix, "\n") {
				lead := "fix:"
				if i > 0 {
					lead = "    "
				}
				fmt.Fprintf(&b, "        %s %s\n", lead, line)
			}
		}
	}
	if n := r.Failed(); n > 0 {
		fmt.Fprintf(&b, "%d check(s) failed.\n", n)
	} else {
		b.WriteString("all checks passed.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Check names, stable for scripts and tests.
const (
	CheckNamespace      = "namespace"
	CheckPod            = "pod"
	CheckWebhook        = "webhook registered"
	CheckSelected       = "webhook selects"
	CheckCertificate    = "webhook certificate"
	CheckReachable      = "webhook answers"
	CheckInjected       = "pod injected"
	CheckMode           = "kubelet stats mode"
	CheckProxyService   = "nodeproxy running"
	CheckProxyCA        = "nodeproxy CA"
	CheckProxyRBAC      = "nodeproxy access"
	CheckWorkloadAccess = "workload access"
	CheckStatsRequest   = "stats request"
)

// Options say what to check and how to reach it.
type Options struct {
	// Namespace to check (required).
	Namespace string
	// Pod, optional: check that pod (injected, its node, its service
	// account) and make a real stats request as its collector would.
	Pod string
	// WebhookConfig names the MutatingWebhookConfiguration; empty finds
	// those named fargate-otel* or labelled app.kubernetes.io/name=fargate-otel.
	WebhookConfig string
	// ProxyURL reaches fargate-otel-nodeproxy directly (from inside the
	// cluster, or a test); empty port-forwards to one of its pods.
	ProxyURL string
	// Timeout bounds each network step (default 10s).
	Timeout time.Duration
	// FleetURL reaches the fleet server's local API directly (a test);
	// empty port-forwards to one of its pods (fleet.go).
	FleetURL string
}

// Run checks and returns the report. The error is for unusable options or
// credentials only: what is wrong in the cluster is in the report.
func Run(ctx context.Context, cfg *rest.Config, o Options) (*Report, error) {
	if o.Namespace == "" {
		return nil, errors.New("doctor: a namespace is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	d := &doctor{cfg: cfg, client: client, o: o, r: &Report{Namespace: o.Namespace, Pod: o.Pod}}
	d.run(ctx)
	return d.r, nil
}

type doctor struct {
	cfg    *rest.Config
	client kubernetes.Interface
	o      Options
	r      *Report

	ns  *corev1.Namespace
	pod *corev1.Pod
	// probe is the pod the API server returned for a dry-run create: what
	// the injector does to a new pod in the namespace right now.
	probe *corev1.Pod
	hooks []webhookRef
}

func (d *doctor) run(ctx context.Context) {
	ns, err := d.client.CoreV1().Namespaces().Get(ctx, d.o.Namespace, metav1.GetOptions{})
	if err != nil {
		d.r.add(CheckNamespace, Fail, describe(err), "check the name: kubectl get namespaces")
		return
	}
	d.ns = ns
	if d.o.Pod != "" {
		pod, err := d.client.CoreV1().Pods(d.o.Namespace).Get(ctx, d.o.Pod, metav1.GetOptions{})
		if err != nil {
			d.r.add(CheckPod, Fail, describe(err), "check the name: kubectl -n "+d.o.Namespace+" get pods")
			return
		}
		d.pod = pod
	}
	d.checkWebhook(ctx)
	d.checkStats(ctx)
	d.checkFleet(ctx)
}

// describe is an API error in a few words.
func describe(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}
