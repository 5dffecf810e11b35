// Package scenario is what a new user of fargate-otel does, as code shared by
// the end-to-end test (e2e/product) and `make demo` (e2e/cmd/demo): build
// and load the images, `helm install` the chart, run an OTLP sink as the
// gateway, opt a namespace in, deploy an app that logs to both streams and
// sends traces, and read back what arrived.
package scenario

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
)

// Names of what the scenario deploys.
const (
	// SinkName is the OTLP sink's Deployment and Service.
	SinkName = "otlp-sink"
	// RegistryName is the local demo's registry Deployment.
	RegistryName = "registry"
	// AppName is the demo app's container name, and its Deployment's.
	AppName = "app"

	// InjectLabel opts a namespace in (enabled) or a pod out (disabled).
	InjectLabel = "fargate-otel.io/inject"
	// KubeletStatsLabel asks for another kubelet stats mode in a namespace
	// (honoured when the chart allows that mode).
	KubeletStatsLabel = "fargate-otel.io/kubelet-stats"
)

// SinkEndpoint is the sink's OTLP/gRPC address for exporters in the cluster.
func SinkEndpoint(namespace string) string {
	return fmt.Sprintf("%s.%s.svc:%d", SinkName, namespace, sinkapi.OTLPPort)
}

// Namespace returns a namespace with the given labels.
func Namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// Restricted is the security context every container of the scenario runs
// with: what the restricted Pod Security Standard asks.
func Restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr(true),
		ReadOnlyRootFilesystem:   ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func resources(cpu, memory, limit string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(limit)},
	}
}

// Sink is the OTLP sink's Deployment and Service: the gateway the chart's
// exporter points at (SinkEndpoint), queried over HTTP on port 8080.
func Sink(namespace, image string, pull corev1.PullPolicy) (*appsv1.Deployment, *corev1.Service) {
	labels := map[string]string{"app.kubernetes.io/name": SinkName}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: SinkName, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// One sink holds the data: never two at once.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr[int64](5),
					Containers: []corev1.Container{{
						Name: "sink", Image: image, ImagePullPolicy: pull,
						Ports: []corev1.ContainerPort{
							{Name: "otlp-grpc", ContainerPort: sinkapi.OTLPPort},
							{Name: "http", ContainerPort: sinkapi.HTTPPort},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: sinkapi.PathHealth, Port: intstr.FromString("http")}},
							PeriodSeconds: 2,
						},
						Resources:       resources("50m", "64Mi", "512Mi"),
						SecurityContext: Restricted(),
					}},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: SinkName, Namespace: namespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "otlp-grpc", Port: sinkapi.OTLPPort, TargetPort: intstr.FromString("otlp-grpc")},
				{Name: "http", Port: sinkapi.HTTPPort, TargetPort: intstr.FromString("http")},
			},
		},
	}
	return dep, svc
}

// Registry is the local demo's image registry: a hostNetwork pod serving
// plain HTTP on the node's port 5000 (cluster.RegistryHost), where
// containerd pulls from and the injector reads entrypoints.
func Registry(namespace, image string) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": RegistryName}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: RegistryName, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					TerminationGracePeriodSeconds: ptr[int64](5),
					Containers: []corev1.Container{{
						Name: "registry", Image: image, ImagePullPolicy: corev1.PullNever,
						Args:  []string{"-listen=:5000", "-dir=/var/lib/registry"},
						Ports: []corev1.ContainerPort{{Name: "registry", ContainerPort: 5000}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(5000)}},
							PeriodSeconds: 2,
						},
						VolumeMounts:    []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/registry"}},
						Resources:       resources("20m", "32Mi", "256Mi"),
						SecurityContext: Restricted(),
					}},
					Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
}

// AppPodSpec runs the demo app (image from a registry, no command: the
// image's ENTRYPOINT, and its CMD unless args are given).
func AppPodSpec(image string, pull corev1.PullPolicy, args []string) corev1.PodSpec {
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr[int64](10),
		Containers: []corev1.Container{{
			Name: AppName, Image: image, ImagePullPolicy: pull, Args: args,
			Resources:       resources("10m", "16Mi", "64Mi"),
			SecurityContext: Restricted(),
		}},
	}
}

// AppDeployment runs the demo app for good.
func AppDeployment(namespace, name, image string, pull corev1.PullPolicy, args []string) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       AppPodSpec(image, pull, args),
			},
		},
	}
}

// AppJob runs the demo app to completion once.
func AppJob(namespace, name, image string, pull corev1.PullPolicy, args []string) *batchv1.Job {
	spec := AppPodSpec(image, pull, args)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": name}},
				Spec:       spec,
			},
		},
	}
}

// AppPod is a bare pod of the demo app that runs to completion.
func AppPod(namespace, name, image string, pull corev1.PullPolicy, args []string, labels map[string]string) *corev1.Pod {
	spec := AppPodSpec(image, pull, args)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}, Spec: spec}
}

func ptr[T any](v T) *T { return &v }
