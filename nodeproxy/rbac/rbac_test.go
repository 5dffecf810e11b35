package rbac

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the YAML files from the Go values")

// GoldenNamespace stands for the release namespace in the YAML files.
const GoldenNamespace = "fargate-otel"

// Files maps each YAML file to the objects it holds.
func files() map[string][]any {
	pr, pb := Proxy(GoldenNamespace)
	ir, ib := Injector(GoldenNamespace)
	dr, db := InjectorDirect(GoldenNamespace)
	return map[string][]any{
		"proxy.yaml":           {pr, pb},
		"direct.yaml":          {Direct()},
		"injector.yaml":        {ir, ib},
		"injector-direct.yaml": {dr, db},
	}
}

const header = "# Generated from nodeproxy/rbac/rbac.go by `go test ./nodeproxy/rbac -update`; do not edit.\n" +
	"# The Helm chart copies this, with namespace fargate-otel replaced by the release namespace.\n"

func render(objs []any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

func TestYAMLFilesMatchGoValues(t *testing.T) {
	for name, objs := range files() {
		got, err := render(objs)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(name, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(filepath.Clean(name))
		if err != nil {
			t.Fatalf("%v (run `go test ./nodeproxy/rbac -update`)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with rbac.go: run `go test ./nodeproxy/rbac -update`\n--- got\n%s", name, got)
		}
	}
}

// TestLeastPrivilege pins the shape of each rule set, so that a wider grant
// is a visible decision.
func TestLeastPrivilege(t *testing.T) {
	for name, rules := range map[string][]rbacv1.PolicyRule{
		"proxy": ProxyRules(), "direct": DirectRules(), "injector": InjectorRules(), "injector-direct": InjectorDirectRules(),
	} {
		for _, r := range rules {
			for _, v := range r.Verbs {
				if v == "*" || v == "escalate" || v == "impersonate" {
					t.Errorf("%s: verb %q", name, v)
				}
			}
			for _, res := range r.Resources {
				if res == "*" || res == "secrets" || res == "pods/exec" || res == "nodes/log" {
					t.Errorf("%s: resource %q", name, res)
				}
				if name == "injector" && res == "configmaps" && (slices.Contains(r.Verbs, "list") || slices.Contains(r.Verbs, "watch")) {
					t.Errorf("injector may list or watch ConfigMaps")
				}
			}
		}
	}
	// nodes/proxy only where it is the point.
	for name, rules := range map[string][]rbacv1.PolicyRule{"injector": InjectorRules(), "injector-direct": InjectorDirectRules()} {
		for _, r := range rules {
			if slices.Contains(r.Resources, "nodes/proxy") {
				t.Errorf("%s holds nodes/proxy", name)
			}
		}
	}
	for _, r := range ProxyRules() {
		if slices.Contains(r.Resources, "nodes/proxy") && !slices.Equal(r.Verbs, []string{"get"}) {
			t.Errorf("proxy: nodes/proxy verbs %v, want only get", r.Verbs)
		}
	}
}
