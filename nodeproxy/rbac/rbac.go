// Package rbac is the RBAC that kubelet stats need, in both modes, as Go
// values and as the YAML files next to this one (generated from the values by
// `go test ./nodeproxy/rbac -update`), which the Helm chart copies. The e2e
// tests apply these very objects to a real API server.
//
// Mode proxy: only fargate-otel-nodeproxy holds nodes/proxy, and nothing
// else it does not need. Mode direct: the chart ships the ClusterRole; the
// injector binds it to the service accounts of injected pods, and may bind
// that role and no other.
package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names shared with the chart, the injector and the doctor.
const (
	// ProxyServiceAccount runs fargate-otel-nodeproxy.
	ProxyServiceAccount = "fargate-otel-nodeproxy"
	// ProxyClusterRole is the proxy's whole authority.
	ProxyClusterRole = "fargate-otel-nodeproxy"
	// DirectClusterRole is what mode direct grants to workload service
	// accounts: reading any kubelet through the API server.
	DirectClusterRole = "fargate-otel-kubelet-stats-direct"
	// DirectBinding is the one ClusterRoleBinding the injector owns in mode
	// direct.
	DirectBinding = "fargate-otel-kubelet-stats-direct"
	// InjectorServiceAccount runs fargate-otel-injector.
	InjectorServiceAccount = "fargate-otel-injector"
	// InjectorClusterRole is what the nodeproxy controllers inside the
	// injector need in every mode (publishing the proxy's CA, removing a
	// stale direct binding).
	InjectorClusterRole = "fargate-otel-injector-nodeproxy"
	// InjectorDirectClusterRole is what they need in addition when mode
	// direct is allowed (following pods, binding DirectClusterRole).
	InjectorDirectClusterRole = "fargate-otel-injector-nodeproxy-direct"
	// CAConfigMap is the ConfigMap, in every opted-in namespace, whose key
	// ca.crt verifies the proxy's serving certificate.
	CAConfigMap = "fargate-otel-nodeproxy-ca"

	// ManagedByLabel marks objects the injector owns and may change or delete.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "fargate-otel-injector"
)

var (
	core = []string{""}
	rbac = []string{"rbac.authorization.k8s.io"}
)

// ProxyRules are the proxy's permissions: verify callers' tokens, know which
// pod runs where, and read kubelets through the API server (the path filter
// and the handler limit that to the stats summary, the pod list and the
// caller's own containers' logs). No pods/log: the logs come through
// nodes/proxy, for the caller's own pod only.
func ProxyRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: core, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: core, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}},
	}
}

// DirectRules are what mode direct grants to workload service accounts, the
// seed design's grant: get nodes/proxy is, in effect, exec into any pod on
// any node (kubernetes#119640), which is why it is not the default.
func DirectRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: core, Resources: []string{"nodes/proxy", "nodes/stats"}, Verbs: []string{"get"}},
	}
}

// InjectorRules are what the nodeproxy controllers in the injector need in
// every mode; the webhook uses the same namespaces watch (for the kubelet
// stats label) and the get of the CA ConfigMap (to know whether a pod in
// mode proxy can start its collector). Names are pinned wherever RBAC
// allows it; "create" cannot be
// limited by name, and there is deliberately no list or watch of
// ConfigMaps (which would reveal every ConfigMap in the cluster).
func InjectorRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: core, Resources: []string{"namespaces"}, Verbs: []string{"list", "watch"}},
		{APIGroups: core, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		{APIGroups: core, Resources: []string{"configmaps"}, Verbs: []string{"get", "update", "patch", "delete"}, ResourceNames: []string{CAConfigMap}},
		{APIGroups: rbac, Resources: []string{"clusterrolebindings"}, Verbs: []string{"get", "delete"}, ResourceNames: []string{DirectBinding}},
	}
}

// InjectorDirectRules are added when mode direct is allowed (the default
// mode, or in kubeletStats.allowedModes): the pods to follow, and the
// right to bind DirectClusterRole (and, through the API server's escalation
// check, no other role the injector does not itself hold).
func InjectorDirectRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: core, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
		{APIGroups: rbac, Resources: []string{"clusterrolebindings"}, Verbs: []string{"create"}},
		{APIGroups: rbac, Resources: []string{"clusterrolebindings"}, Verbs: []string{"update", "patch"}, ResourceNames: []string{DirectBinding}},
		{APIGroups: rbac, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{DirectClusterRole}},
	}
}

// Labels of every object here.
func labels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "fargate-otel", "app.kubernetes.io/component": "nodeproxy"}
}

func clusterRole(name string, rules []rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels()},
		Rules:      rules,
	}
}

func clusterRoleBinding(name, role, namespace, serviceAccount string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels()},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}},
	}
}

// Proxy is the proxy's ClusterRole and its binding to ProxyServiceAccount in
// namespace (the release namespace).
func Proxy(namespace string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	return clusterRole(ProxyClusterRole, ProxyRules()),
		clusterRoleBinding(ProxyClusterRole, ProxyClusterRole, namespace, ProxyServiceAccount)
}

// Direct is the ClusterRole mode direct binds (the binding is the injector's).
func Direct() *rbacv1.ClusterRole { return clusterRole(DirectClusterRole, DirectRules()) }

// Injector is the injector's nodeproxy ClusterRole and its binding to
// InjectorServiceAccount in namespace.
func Injector(namespace string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	return clusterRole(InjectorClusterRole, InjectorRules()),
		clusterRoleBinding(InjectorClusterRole, InjectorClusterRole, namespace, InjectorServiceAccount)
}

// InjectorDirect is the injector's extra ClusterRole for mode direct and its
// binding; the chart renders them only in that mode.
func InjectorDirect(namespace string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	return clusterRole(InjectorDirectClusterRole, InjectorDirectRules()),
		clusterRoleBinding(InjectorDirectClusterRole, InjectorDirectClusterRole, namespace, InjectorServiceAccount)
}
