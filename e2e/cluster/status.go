package cluster

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DeploymentAvailable is nil once every replica of the current spec is
// ready; otherwise it says why not, with the state of its pods.
func DeploymentAvailable(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.ObservedGeneration < d.Generation || d.Status.ReadyReplicas < want || d.Status.UpdatedReplicas < want ||
		d.Status.Replicas != want {
		sel := metav1.FormatLabelSelector(d.Spec.Selector)
		return fmt.Errorf("deployment %s/%s: %d/%d ready%s", ns, name, d.Status.ReadyReplicas, want, PodStates(ctx, cs, ns, sel))
	}
	return nil
}

// PodStates describes the pods matching selector in one line each: a
// timeout alone says nothing about an image that could not be pulled.
func PodStates(ctx context.Context, cs kubernetes.Interface, ns, selector string) string {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range pods.Items {
		b.WriteString("\n  " + DescribePod(&p))
	}
	return b.String()
}

// DescribePod is a pod's phase and the state of each of its containers.
func DescribePod(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s/%s: %s", p.Namespace, p.Name, p.Status.Phase)
	for _, c := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		switch {
		case c.State.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting: %s %s", c.Name, c.State.Waiting.Reason, c.State.Waiting.Message)
		case c.State.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated: %s (exit %d)", c.Name, c.State.Terminated.Reason, c.State.Terminated.ExitCode)
		default:
			fmt.Fprintf(&b, "; %s running, ready=%v, restarts %d", c.Name, c.Ready, c.RestartCount)
		}
	}
	return b.String()
}
