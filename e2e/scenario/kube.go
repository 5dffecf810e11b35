package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
)

// Poll calls f until it returns nil, every 250 ms, for at most timeout (or
// until ctx ends); the error says what was last wrong (not that the last
// attempt was cut short by the deadline).
func Poll(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, last)
		case <-tick.C:
		}
	}
}

// EnsureNamespace creates the namespace, or sets its labels when it exists.
func EnsureNamespace(ctx context.Context, cs kubernetes.Interface, ns *corev1.Namespace) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return wrap("create namespace "+ns.Name, err)
	}
	cur, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	for k, v := range ns.Labels {
		cur.Labels[k] = v
	}
	_, err = cs.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
	return wrap("label namespace "+ns.Name, err)
}

// ApplyDeployment creates the Deployment, or replaces its spec.
func ApplyDeployment(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) error {
	api := cs.AppsV1().Deployments(d.Namespace)
	_, err := api.Create(ctx, d, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return wrap("create deployment "+d.Namespace+"/"+d.Name, err)
	}
	cur, err := api.Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Spec = d.Spec
	cur.Labels = d.Labels
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return wrap("update deployment "+d.Namespace+"/"+d.Name, err)
}

// ApplyService creates the Service, or replaces its ports and selector.
func ApplyService(ctx context.Context, cs kubernetes.Interface, s *corev1.Service) error {
	api := cs.CoreV1().Services(s.Namespace)
	_, err := api.Create(ctx, s, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return wrap("create service "+s.Namespace+"/"+s.Name, err)
	}
	cur, err := api.Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Spec.Ports, cur.Spec.Selector = s.Spec.Ports, s.Spec.Selector
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return wrap("update service "+s.Namespace+"/"+s.Name, err)
}

// CreateJob creates the Job, deleting an earlier one of that name first.
func CreateJob(ctx context.Context, cs kubernetes.Interface, j *batchv1.Job) error {
	api := cs.BatchV1().Jobs(j.Namespace)
	bg := metav1.DeletePropagationForeground
	if err := api.Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err == nil {
		if err := Poll(ctx, time.Minute, func(ctx context.Context) error {
			if _, err := api.Get(ctx, j.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("job %s/%s still there (%w)", j.Namespace, j.Name, err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	_, err := api.Create(ctx, j, metav1.CreateOptions{})
	return wrap("create job "+j.Namespace+"/"+j.Name, err)
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// WaitDeployment waits for cluster.DeploymentAvailable.
func WaitDeployment(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) error {
	return Poll(ctx, timeout, func(ctx context.Context) error { return cluster.DeploymentAvailable(ctx, cs, ns, name) })
}

// PodRunning is nil when the pod is Running with every container (native
// sidecars included) running.
func PodRunning(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning {
		return errors.New(cluster.DescribePod(p))
	}
	for _, c := range p.Status.InitContainerStatuses {
		// Sidecars run; the other init containers have succeeded.
		done := c.State.Terminated != nil && c.State.Terminated.ExitCode == 0 && !isSidecar(p, c.Name)
		if c.State.Running == nil && !done {
			return errors.New(cluster.DescribePod(p))
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return errors.New(cluster.DescribePod(p))
		}
	}
	return nil
}

// PodSucceeded is nil when the pod has run to completion.
func PodSucceeded(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodSucceeded {
		return fmt.Errorf("not Succeeded: %s", cluster.DescribePod(p))
	}
	return nil
}

// WaitPod polls the pod until ready (PodRunning, PodSucceeded) is nil, and
// returns it as it was then.
func WaitPod(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration, ready func(*corev1.Pod) error) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := Poll(ctx, timeout, func(ctx context.Context) error {
		var err error
		if pod, err = cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		return ready(pod)
	})
	return pod, err
}

func isSidecar(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	return false
}

// OnlyPod returns the single pod matching selector (a Deployment's or a
// Job's), once there is exactly one that is not being deleted.
func OnlyPod(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*corev1.Pod, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		return nil, fmt.Errorf("%d pods match %s in %s, want 1", len(live), selector, ns)
	}
	return &live[0], nil
}

// ProxyGetter reaches a Service's HTTP port through the API server's service
// proxy: from anywhere kubectl works, with nothing exposed.
func ProxyGetter(cs kubernetes.Interface, ns, service string, port int) sinkapi.Getter {
	return func(ctx context.Context, path string, query url.Values) ([]byte, error) {
		params := map[string]string{}
		for k, v := range query {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
		return cs.CoreV1().Services(ns).ProxyGet("http", service, fmt.Sprint(port), path, params).DoRaw(ctx)
	}
}
