package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fargate-otel/fargate-otel/internal/gobuild"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// rbacFiles are the files nodeproxy/rbac generates, and the kubelet stats
// mode whose use (as the default or an allowed mode) needs each ("" always).
var rbacFiles = map[string]string{
	"proxy.yaml":           "proxy",
	"injector.yaml":        "",
	"injector-direct.yaml": "direct",
	"direct.yaml":          "direct",
}

// TestRBACEqualsNodeproxyFiles: the chart's kubelet stats RBAC is exactly
// nodeproxy/rbac/*.yaml (generated from Go by that package's golden test),
// in the modes that need it and in no other, so that the two cannot drift.
func TestRBACEqualsNodeproxyFiles(t *testing.T) {
	root, err := gobuild.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for name, inUse := range map[string][]string{
		"proxy":                 {"proxy"},
		"direct":                {"direct"},
		"off":                   {"off"},
		"proxy, direct allowed": {"proxy", "direct"},
	} {
		t.Run(name, func(t *testing.T) {
			// Another release namespace, to see that it replaces fargate-otel.
			out, err := runHelm(t, "template", release, chartDir(t), "--namespace", "observability", "--kube-version", kubeVersion,
				"--set", "kubeletStats.mode="+inUse[0], "--set", "kubeletStats.allowedModes={"+strings.Join(inUse, ",")+"}")
			if err != nil {
				t.Fatal(err)
			}
			chart, err := parse(out)
			if err != nil {
				t.Fatal(err)
			}
			for file, needs := range rbacFiles {
				data, err := os.ReadFile(filepath.Join(root, "nodeproxy", "rbac", file))
				if err != nil {
					t.Fatal(err)
				}
				want, err := parse(strings.ReplaceAll(string(data), "namespace: fargate-otel", "namespace: observability"))
				if err != nil {
					t.Fatal(err)
				}
				if len(want) == 0 {
					t.Fatalf("%s holds no object", file)
				}
				for _, w := range want {
					got := chart.find(w.GetKind(), w.GetName())
					if needs != "" && !slices.Contains(inUse, needs) {
						if got != nil {
							t.Errorf("modes %v: the chart renders %s %s (from %s), which only mode %s needs", inUse, w.GetKind(), w.GetName(), file, needs)
						}
						continue
					}
					if got == nil {
						t.Errorf("modes %v: the chart lacks %s %s of nodeproxy/rbac/%s", inUse, w.GetKind(), w.GetName(), file)
						continue
					}
					if diff := rbacDiff(t, w, got); diff != "" {
						t.Errorf("modes %v: %s %s differs from nodeproxy/rbac/%s: %s", inUse, w.GetKind(), w.GetName(), file, diff)
					}
				}
			}
		})
	}
}

// rbacDiff compares what grants (rules, roleRef, subjects) and the file's
// labels, which the chart may add to.
func rbacDiff(t *testing.T, want, got *unstructured.Unstructured) string {
	t.Helper()
	for k, v := range want.GetLabels() {
		if got.GetLabels()[k] != v {
			return fmt.Sprintf("label %s=%s missing", k, v)
		}
	}
	switch want.GetKind() {
	case "ClusterRole", "Role":
		var w, g rbacv1.ClusterRole
		decode(t, want, &w)
		decode(t, got, &g)
		if fmt.Sprintf("%+v", w.Rules) != fmt.Sprintf("%+v", g.Rules) {
			return fmt.Sprintf("rules\n  file:  %+v\n  chart: %+v", w.Rules, g.Rules)
		}
	case "ClusterRoleBinding", "RoleBinding":
		var w, g rbacv1.ClusterRoleBinding
		decode(t, want, &w)
		decode(t, got, &g)
		if fmt.Sprintf("%+v %+v", w.RoleRef, w.Subjects) != fmt.Sprintf("%+v %+v", g.RoleRef, g.Subjects) {
			return fmt.Sprintf("binding\n  file:  %+v %+v\n  chart: %+v %+v", w.RoleRef, w.Subjects, g.RoleRef, g.Subjects)
		}
	default:
		return "unexpected kind " + want.GetKind()
	}
	return ""
}

func decode(t *testing.T, u *unstructured.Unstructured, out any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// TestInjectorRBAC pins the injector's own rights (what the webhook and the
// certificate rotator call), for the values that change them.
func TestInjectorRBAC(t *testing.T) {
	type grant struct {
		kind, group, resource string
		verbs                 string
		names                 string
	}
	rulesOf := func(t *testing.T, objs objects, kind, name string) []grant {
		t.Helper()
		u := objs.find(kind, name)
		if u == nil {
			return nil
		}
		var r rbacv1.ClusterRole
		decode(t, u, &r)
		var out []grant
		for _, rule := range r.Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					out = append(out, grant{kind, g, res, strings.Join(rule.Verbs, ","), strings.Join(rule.ResourceNames, ",")})
				}
			}
		}
		return out
	}
	all := func(t *testing.T, values map[string]any) []grant {
		t.Helper()
		objs := render(t, values)
		return append(rulesOf(t, objs, "ClusterRole", "fargate-otel-injector"), rulesOf(t, objs, "Role", "fargate-otel-injector")...)
	}
	base := []grant{
		{"ClusterRole", "", "configmaps", "get", ""},
		{"ClusterRole", "", "limitranges", "list,watch", ""},
		{"ClusterRole", "events.k8s.io", "events", "create,patch", ""},
		{"Role", "coordination.k8s.io", "leases", "create", ""},
		{"Role", "coordination.k8s.io", "leases", "get,update", "fargate-otel-injector"},
		{"Role", "", "events", "create,patch", ""},
	}
	pullSecrets := []grant{
		{"ClusterRole", "", "serviceaccounts", "get", ""},
		{"ClusterRole", "", "secrets", "get", ""},
	}
	certs := func(secrets string) []grant {
		return []grant{
			{"ClusterRole", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get,patch", "fargate-otel-injector"},
			{"Role", "", "secrets", "get,update", secrets},
		}
	}
	for name, c := range map[string]struct {
		values map[string]any
		want   []grant
	}{
		"defaults":              {nil, concat(base, pullSecrets, certs("fargate-otel-ca,fargate-otel-injector-tls,fargate-otel-nodeproxy-tls,fargate-otel-fleet-tls"))},
		"fleet off":             {map[string]any{"fleet": map[string]any{"enabled": false}}, concat(base, pullSecrets, certs("fargate-otel-ca,fargate-otel-injector-tls,fargate-otel-nodeproxy-tls"))},
		"mode direct only":      {map[string]any{"kubeletStats": map[string]any{"mode": "direct", "allowedModes": []string{}}}, concat(base, pullSecrets, certs("fargate-otel-ca,fargate-otel-injector-tls"))},
		"mode direct, defaults": {map[string]any{"kubeletStats": map[string]any{"mode": "direct"}}, concat(base, pullSecrets, certs("fargate-otel-ca,fargate-otel-injector-tls,fargate-otel-nodeproxy-tls,fargate-otel-fleet-tls"))},
		"cert-manager":          {map[string]any{"certManager": map[string]any{"enabled": true}}, concat(base, pullSecrets)},
		"no image look-up":      {map[string]any{"imageLookup": map[string]any{"enabled": false}}, concat(base, certs("fargate-otel-ca,fargate-otel-injector-tls,fargate-otel-nodeproxy-tls,fargate-otel-fleet-tls"))},
		"pull secrets narrowed": {map[string]any{"imageLookup": map[string]any{"pullSecretNamespaces": []string{"shop"}}}, concat(base, certs("fargate-otel-ca,fargate-otel-injector-tls,fargate-otel-nodeproxy-tls,fargate-otel-fleet-tls"))},
	} {
		t.Run(name, func(t *testing.T) {
			got := all(t, c.values)
			if fmt.Sprint(sortedGrants(got)) != fmt.Sprint(sortedGrants(c.want)) {
				t.Errorf("injector rights\n  got:  %v\n  want: %v", sortedGrants(got), sortedGrants(c.want))
			}
		})
	}

	objs := render(t, map[string]any{"imageLookup": map[string]any{"pullSecretNamespaces": []string{"shop", "cart"}}})
	for _, ns := range []string{"shop", "cart"} {
		var role rbacv1.Role
		found := false
		for _, u := range objs.of("Role") {
			if u.GetName() == "fargate-otel-injector-pull-secrets" && u.GetNamespace() == ns {
				decode(t, u, &role)
				found = true
			}
		}
		if !found || fmt.Sprint(role.Rules) != fmt.Sprint([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts", "secrets"}, Verbs: []string{"get"}}}) {
			t.Errorf("namespace %s: pull-secret Role %v (found %v)", ns, role.Rules, found)
		}
	}
}

// TestNoWildcards: no rule of the chart uses "*", and only the node proxy
// may get nodes/proxy in mode proxy.
func TestNoWildcards(t *testing.T) {
	for _, mode := range []string{"proxy", "direct", "off"} {
		objs := render(t, map[string]any{"kubeletStats": map[string]any{"mode": mode, "allowedModes": []string{"proxy", "direct", "off"}}, "certManager": map[string]any{"enabled": mode == "off"}})
		for _, u := range append(objs.of("ClusterRole"), objs.of("Role")...) {
			var r rbacv1.ClusterRole
			decode(t, u, &r)
			for _, rule := range r.Rules {
				if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
					t.Errorf("mode %s: %s %s has a wildcard rule %+v", mode, u.GetKind(), u.GetName(), rule)
				}
				if slices.Contains(rule.Resources, "nodes/proxy") && u.GetName() != rbac.ProxyClusterRole && u.GetName() != rbac.DirectClusterRole {
					t.Errorf("mode %s: %s %s grants nodes/proxy", mode, u.GetKind(), u.GetName())
				}
				// A list or watch restricted to named objects (the fleet's
				// own live settings ConfigMap, read with a field selector)
				// reads nothing else.
				if (slices.Contains(rule.Resources, "secrets") || slices.Contains(rule.Resources, "configmaps")) &&
					(slices.Contains(rule.Verbs, "list") || slices.Contains(rule.Verbs, "watch")) && len(rule.ResourceNames) == 0 {
					t.Errorf("mode %s: %s %s may list or watch secrets or configmaps: %+v", mode, u.GetKind(), u.GetName(), rule)
				}
			}
		}
	}
}

func concat[T any](lists ...[]T) []T {
	var out []T
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func sortedGrants[T any](g []T) []string {
	out := make([]string, len(g))
	for i, x := range g {
		out[i] = fmt.Sprintf("%+v", x)
	}
	slices.Sort(out)
	return out
}
