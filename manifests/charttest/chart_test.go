// Package charttest tests the Helm chart manifests/charts/fargate-otel with
// the helm CLI: lint, the objects `helm template` renders for the defaults
// and for each value that changes them, the schema, RBAC equal to
// nodeproxy/rbac, and (apiserver_test.go) a real API server accepting the
// chart, as `helm install` and `helm upgrade` send it.
package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/webhook"
	"github.com/fargate-otel/fargate-otel/internal/version"
)

func TestLint(t *testing.T) {
	for name, args := range map[string][]string{
		"defaults":                       nil,
		"cert-manager, direct":           {"--set", "certManager.enabled=true", "--set", "kubeletStats.mode=direct"},
		"cert-manager issuer, stats off": {"--set", "certManager.enabled=true", "--set", "certManager.issuerRef.kind=ClusterIssuer", "--set", "certManager.issuerRef.name=corp", "--set", "kubeletStats.mode=off"},
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := runHelm(t, append([]string{"lint", "--strict", chartDir(t)}, args...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	objs := render(t, nil)
	for _, want := range []string{
		"ServiceAccount/fargate-otel-injector", "ServiceAccount/fargate-otel-nodeproxy",
		"ConfigMap/fargate-otel-injector", "Deployment/fargate-otel-injector", "Service/fargate-otel-injector",
		"PodDisruptionBudget/fargate-otel-injector", "MutatingWebhookConfiguration/fargate-otel-injector",
		"Deployment/fargate-otel-nodeproxy", "Service/fargate-otel-nodeproxy", "PodDisruptionBudget/fargate-otel-nodeproxy",
		"Secret/fargate-otel-ca", "Secret/fargate-otel-injector-tls", "Secret/fargate-otel-nodeproxy-tls",
		"ClusterRole/fargate-otel-injector", "ClusterRoleBinding/fargate-otel-injector",
		"Role/fargate-otel-injector", "RoleBinding/fargate-otel-injector",
	} {
		if !slices.Contains(objs.names(), want) {
			t.Errorf("no %s in %v", want, objs.names())
		}
	}
	for _, u := range objs {
		if ns := u.GetNamespace(); ns != "" && ns != namespace {
			t.Errorf("%s/%s in namespace %q", u.GetKind(), u.GetName(), ns)
		}
		if u.GetLabels()["app.kubernetes.io/name"] != "fargate-otel" {
			t.Errorf("%s/%s lacks app.kubernetes.io/name=fargate-otel", u.GetKind(), u.GetName())
		}
	}
}

func TestWebhookConfiguration(t *testing.T) {
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	render(t, nil).get(t, "MutatingWebhookConfiguration", "fargate-otel-injector", &mwc)
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(mwc.Webhooks))
	}
	h := mwc.Webhooks[0]
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("failurePolicy", *h.FailurePolicy, admissionregistrationv1.Ignore)
	check("reinvocationPolicy", *h.ReinvocationPolicy, admissionregistrationv1.IfNeededReinvocationPolicy)
	// The injector records an Event when it fails open, never on dry runs.
	check("sideEffects", *h.SideEffects, admissionregistrationv1.SideEffectClassNoneOnDryRun)
	check("timeoutSeconds", *h.TimeoutSeconds, 10)
	check("admissionReviewVersions", h.AdmissionReviewVersions, []string{"v1"})
	check("service", fmt.Sprintf("%s/%s:%d%s", h.ClientConfig.Service.Namespace, h.ClientConfig.Service.Name, *h.ClientConfig.Service.Port, *h.ClientConfig.Service.Path),
		"fargate-otel/fargate-otel-injector:443"+webhook.Path)
	if len(h.ClientConfig.CABundle) != 0 {
		t.Error("the chart renders a caBundle: the injector (or cert-manager) owns it")
	}
	check("rules", fmt.Sprintf("%v %v %v %v", h.Rules[0].Operations, h.Rules[0].APIGroups, h.Rules[0].APIVersions, h.Rules[0].Resources), "[CREATE] [] [v1] [pods]")

	// The selectors, evaluated on labels, as the API server does.
	nsSel, err := metav1.LabelSelectorAsSelector(h.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	objSel, err := metav1.LabelSelectorAsSelector(h.ObjectSelector)
	if err != nil {
		t.Fatal(err)
	}
	nsName := "kubernetes.io/metadata.name"
	for _, c := range []struct {
		ns, pod map[string]string
		want    bool
	}{
		{map[string]string{nsName: "shop", "fargate-otel.io/inject": "enabled"}, nil, true},
		{map[string]string{nsName: "shop", "fargate-otel.io/inject": "enabled"}, map[string]string{"app": "web"}, true},
		{map[string]string{nsName: "shop", "fargate-otel.io/inject": "enabled"}, map[string]string{"fargate-otel.io/inject": "disabled"}, false},
		{map[string]string{nsName: "shop"}, nil, false},
		{map[string]string{nsName: "shop", "fargate-otel.io/inject": "disabled"}, nil, false},
		{map[string]string{nsName: "fargate-otel", "fargate-otel.io/inject": "enabled"}, nil, false},
		{map[string]string{nsName: "kube-system", "fargate-otel.io/inject": "enabled"}, nil, false},
	} {
		got := nsSel.Matches(labels.Set(c.ns)) && objSel.Matches(labels.Set(c.pod))
		if got != c.want {
			t.Errorf("namespace %v, pod %v: sent to the webhook %v, want %v", c.ns, c.pod, got, c.want)
		}
	}

	// Values that change it.
	render(t, map[string]any{"injector": map[string]any{"failurePolicy": "Fail", "timeoutSeconds": 15}}).
		get(t, "MutatingWebhookConfiguration", "fargate-otel-injector", &mwc)
	check("failurePolicy with injector.failurePolicy=Fail", *mwc.Webhooks[0].FailurePolicy, admissionregistrationv1.Fail)
	check("timeoutSeconds with injector.timeoutSeconds=15", *mwc.Webhooks[0].TimeoutSeconds, 15)
	var other admissionregistrationv1.MutatingWebhookConfiguration
	out, err := runHelm(t, "template", release, chartDir(t), "--namespace", "observability", "--kube-version", kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	objs.get(t, "MutatingWebhookConfiguration", "fargate-otel-injector", &other)
	if !strings.Contains(fmt.Sprint(other.Webhooks[0].NamespaceSelector), "observability") ||
		other.Webhooks[0].ClientConfig.Service.Namespace != "observability" {
		t.Errorf("in namespace observability: selector %v, service %v", other.Webhooks[0].NamespaceSelector, other.Webhooks[0].ClientConfig.Service)
	}
}

// TestDeployments: replicas, disruption budgets, anti-affinity, probes,
// resources and a locked-down security context for both Deployments.
func TestDeployments(t *testing.T) {
	objs := render(t, nil)
	for _, name := range []string{"fargate-otel-injector", "fargate-otel-nodeproxy", "fargate-otel-fleet"} {
		t.Run(name, func(t *testing.T) {
			var d appsv1.Deployment
			objs.get(t, "Deployment", name, &d)
			if *d.Spec.Replicas != 2 {
				t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
			}
			if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
				t.Error("a rolling update may take a serving replica away before its successor is ready")
			}
			var pdb policyv1.PodDisruptionBudget
			objs.get(t, "PodDisruptionBudget", name, &pdb)
			if pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("PDB minAvailable %v, want 1", pdb.Spec.MinAvailable)
			}
			if !metav1.HasLabel(metav1.ObjectMeta{Labels: d.Spec.Template.Labels}, "app.kubernetes.io/component") ||
				fmt.Sprint(pdb.Spec.Selector.MatchLabels) != fmt.Sprint(d.Spec.Selector.MatchLabels) {
				t.Errorf("PDB selector %v, Deployment selector %v", pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
			}
			spec := d.Spec.Template.Spec
			aa := spec.Affinity.PodAntiAffinity
			if aa == nil || len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 1 || len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 ||
				aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" ||
				fmt.Sprint(aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels) != fmt.Sprint(d.Spec.Selector.MatchLabels) {
				t.Errorf("anti-affinity %+v: want replicas preferring other nodes (never required: a one-node cluster must run them all)", aa)
			}
			ps := spec.SecurityContext
			if ps == nil || !*ps.RunAsNonRoot || *ps.RunAsUser == 0 || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v", ps)
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers", len(spec.Containers))
			}
			c := spec.Containers[0]
			sc := c.SecurityContext
			if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
				!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
				t.Errorf("container security context %+v", sc)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("probes: readiness %+v, liveness %+v", c.ReadinessProbe, c.LivenessProbe)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
			}
			if c.Image != version.Image(name) {
				t.Errorf("image %s, want %s", c.Image, version.Image(name))
			}
		})
	}

	// One replica: no disruption budget (it would block every node drain).
	one := render(t, map[string]any{"injector": map[string]any{"replicas": 1}, "nodeproxy": map[string]any{"replicas": 1}, "fleet": map[string]any{"replicas": 1}})
	if n := len(one.of("PodDisruptionBudget")); n != 0 {
		t.Errorf("%d PodDisruptionBudgets with one replica each", n)
	}
}

func injectorDeployment(t *testing.T, objs objects) (appsv1.Deployment, corev1.Container) {
	t.Helper()
	var d appsv1.Deployment
	objs.get(t, "Deployment", "fargate-otel-injector", &d)
	return d, d.Spec.Template.Spec.Containers[0]
}

// config is the injector's config file as the chart renders it, read by the
// injector's own strict parser.
func config(t *testing.T, objs objects) injector.Config {
	t.Helper()
	var cm corev1.ConfigMap
	objs.get(t, "ConfigMap", "fargate-otel-injector", &cm)
	cfg, err := injector.ParseConfig([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the injector refuses the chart's config file: %v\n%s", err, cm.Data["config.yaml"])
	}
	return cfg
}

func TestInjectorConfigFile(t *testing.T) {
	objs := render(t, nil)
	cfg := config(t, objs)
	if cfg.Images.Tee != version.Image("fargate-otel-tee") || cfg.Images.Collector != version.Image("fargate-otel-collector") {
		t.Errorf("images %+v, want the chart's version %s", cfg.Images, version.Version)
	}
	if cfg.Scope != injector.ScopeFargate || cfg.KubeletStats.Mode != injector.KubeletStatsProxy {
		t.Errorf("scope %s, mode %s", cfg.Scope, cfg.KubeletStats.Mode)
	}
	np := cfg.KubeletStats.NodeProxy
	if np.Service != "fargate-otel-nodeproxy" || np.Namespace != namespace || np.Port != 443 {
		t.Errorf("node proxy %+v: want the chart's Service", np)
	}
	if len(cfg.Exporters) != 1 || cfg.Exporters[0].ID != "otlp_grpc/gateway" || cfg.Exporters[0].Config["endpoint"] != "otel-gateway.opentelemetry.svc:4317" {
		t.Errorf("exporters %+v: want OTLP to the gateway", cfg.Exporters)
	}
	def := injector.DefaultConfig()
	if !cfg.Follower.Enabled || !equality.Semantic.DeepEqual(cfg.Follower.Resources, def.Follower.Resources) {
		t.Errorf("follower %+v, want the injector's defaults %+v", cfg.Follower, def.Follower)
	}
	if cfg.Logs.VolumeSizeLimit.Cmp(def.Logs.VolumeSizeLimit) != 0 || cfg.Logs.MaxSize.Cmp(def.Logs.MaxSize) != 0 || cfg.Logs.MaxBackups != def.Logs.MaxBackups {
		t.Errorf("logs %+v, want the injector's defaults %+v", cfg.Logs, def.Logs)
	}

	// Every value that goes into the file.
	cfg = config(t, render(t, map[string]any{
		"clusterName":   "prod-eu",
		"scope":         "all",
		"images":        map[string]any{"tag": "9.9.9", "pullPolicy": "Always", "collector": map[string]any{"repository": "registry.example.com/otel", "tag": "sha256:" + strings.Repeat("a", 64)}},
		"exporters":     []map[string]any{{"id": "otlp_http/vendor", "config": map[string]any{"endpoint": "https://otlp.example.com"}, "signals": []string{"logs"}}, {"id": "debug"}},
		"signals":       map[string]any{"traces": false},
		"kubeletStats":  map[string]any{"mode": "direct", "interval": "1m"},
		"logs":          map[string]any{"volumeSizeLimit": "1Gi", "maxSize": "50Mi", "maxBackups": 2, "format": "raw"},
		"collector":     map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "100Mi"}, "limits": map[string]any{"memory": "300Mi"}}},
		"fargateSizing": "fixed",
		"follower":      map[string]any{"enabled": false, "resources": map[string]any{"requests": map[string]any{"memory": "40Mi"}, "limits": map[string]any{"memory": "96Mi"}}},
	}))
	for what, ok := range map[string]bool{
		"clusterName":      cfg.ClusterName == "prod-eu",
		"scope":            cfg.Scope == injector.ScopeAll,
		"images.tag":       cfg.Images.Tee == "ghcr.io/fargate-otel/fargate-otel-tee:9.9.9",
		"digest":           cfg.Images.Collector == "registry.example.com/otel@sha256:"+strings.Repeat("a", 64),
		"pullPolicy":       cfg.Images.PullPolicy == corev1.PullAlways,
		"exporters":        len(cfg.Exporters) == 2 && cfg.Exporters[0].ID == "otlp_http/vendor" && slices.Equal(cfg.Exporters[0].Signals, []string{"logs"}),
		"signals":          cfg.Signals.Logs && cfg.Signals.Metrics && !cfg.Signals.Traces,
		"kubeletStats":     cfg.KubeletStats.Mode == injector.KubeletStatsDirect && cfg.KubeletStats.Interval.Minutes() == 1,
		"logs":             cfg.Logs.VolumeSizeLimit.String() == "1Gi" && cfg.Logs.MaxSize.String() == "50Mi" && cfg.Logs.MaxBackups == 2 && cfg.Logs.Format == "raw",
		"collector":        cfg.Collector.Resources.Limits.Memory().String() == "300Mi" && cfg.Collector.Resources.Requests.Cpu().String() == "50m",
		"fargateSizing":    cfg.FargateSizing == "fixed",
		"minRequests kept": cfg.Collector.MinRequests.Memory().String() == "64Mi",
		"follower":         !cfg.Follower.Enabled && cfg.Follower.Resources.Requests.Memory().String() == "40Mi" && cfg.Follower.Resources.Limits.Memory().String() == "96Mi",
	} {
		if !ok {
			t.Errorf("%s not carried into the config file: %+v", what, cfg)
		}
	}
	// [] exporters: the injector's built-in default.
	if cfg := config(t, render(t, map[string]any{"exporters": []any{}})); len(cfg.Exporters) != 0 {
		t.Errorf("exporters [] gave %+v, want the built-in default", cfg.Exporters)
	}
}

// TestConfigChecksum: a change of the config file rolls the injector's
// pods; a change elsewhere does not.
func TestConfigChecksum(t *testing.T) {
	sum := func(values map[string]any) string {
		t.Helper()
		d, _ := injectorDeployment(t, render(t, values))
		s := d.Spec.Template.Annotations["checksum/config"]
		if len(s) != 64 {
			t.Fatalf("checksum/config %q", s)
		}
		return s
	}
	base := sum(nil)
	if sum(map[string]any{"clusterName": "other"}) == base {
		t.Error("the checksum did not change with the config file")
	}
	if sum(map[string]any{"injector": map[string]any{"replicas": 3}}) != base {
		t.Error("the checksum changed with a value outside the config file")
	}
}

func TestInjectorArgs(t *testing.T) {
	_, c := injectorDeployment(t, render(t, nil))
	for _, want := range []string{"--config=/etc/fargate-otel/config/config.yaml", "--leader-elect=true", "--manage-certs", "--native-sidecars=auto", "--prestop-sleep=auto", "--webhook-port=9443"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Error("no POD_NAMESPACE from the Downward API (leader election, certificate Secrets)")
	}
	_, c = injectorDeployment(t, render(t, map[string]any{
		"nativeSidecars": "false",
		"preStopSleep":   false,
		"imageLookup":    map[string]any{"budget": "6s", "insecureRegistries": []string{"registry.local:5000", "10.0.0.5"}, "ecr": false},
		"injector":       map[string]any{"logLevel": "debug", "port": 10250, "hostNetwork": true},
	}))
	for _, want := range []string{"--native-sidecars=false", "--prestop-sleep=false", "--image-lookup-budget=6s", "--insecure-registries=registry.local:5000,10.0.0.5", "--disable-ecr", "--log-level=debug", "--webhook-port=10250"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if c.Ports[0].ContainerPort != 10250 {
		t.Errorf("webhook container port %d", c.Ports[0].ContainerPort)
	}
	_, c = injectorDeployment(t, render(t, map[string]any{"imageLookup": map[string]any{"enabled": false}}))
	if !slices.Contains(c.Args, "--disable-image-lookup") || slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--image-lookup-budget") }) {
		t.Errorf("image look-up off: args %v", c.Args)
	}
	d, _ := injectorDeployment(t, render(t, map[string]any{"injector": map[string]any{"hostNetwork": true}}))
	if !d.Spec.Template.Spec.HostNetwork || d.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Error("injector.hostNetwork not applied")
	}
}

func TestSchedulingValues(t *testing.T) {
	objs := render(t, map[string]any{
		"images": map[string]any{"pullSecrets": []string{"regcred"}},
		"injector": map[string]any{
			"nodeSelector":              map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":               []map[string]any{{"key": "dedicated", "operator": "Exists"}},
			"priorityClassName":         "system-cluster-critical",
			"affinity":                  map[string]any{"nodeAffinity": map[string]any{}},
			"podAnnotations":            map[string]any{"a": "b"},
			"podLabels":                 map[string]any{"team": "platform"},
			"serviceAccountAnnotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"},
		},
	})
	d, _ := injectorDeployment(t, objs)
	s := d.Spec.Template.Spec
	if s.NodeSelector["kubernetes.io/os"] != "linux" || len(s.Tolerations) != 1 || s.PriorityClassName != "system-cluster-critical" ||
		s.Affinity.PodAntiAffinity != nil || d.Spec.Template.Annotations["a"] != "b" || d.Spec.Template.Labels["team"] != "platform" ||
		len(s.ImagePullSecrets) != 1 || s.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("scheduling values not applied: %+v", s)
	}
	var sa corev1.ServiceAccount
	objs.get(t, "ServiceAccount", "fargate-otel-injector", &sa)
	if sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Error("serviceAccountAnnotations not applied")
	}
}

// TestKubeletStatsModes: the node proxy exists when mode proxy is in use
// (the default mode, or one namespaces may choose), and the injector mounts
// its CA only then.
func TestKubeletStatsModes(t *testing.T) {
	for name, c := range map[string]struct {
		mode    any
		allowed []any
		proxy   bool
	}{
		"proxy only":              {"proxy", []any{}, true},
		"direct only":             {"direct", []any{}, false},
		"off only":                {"off", []any{}, false},
		"off unquoted in YAML":    {false, []any{}, false},
		"off, proxy allowed":      {"off", []any{"proxy"}, true},
		"direct, default allowed": {"direct", nil, true},
		"proxy, direct allowed":   {"proxy", []any{"proxy", "direct", false}, true},
	} {
		mode := fmt.Sprint(c.mode)
		if c.mode == false {
			mode = "off"
		}
		t.Run(name, func(t *testing.T) {
			ks := map[string]any{"mode": c.mode}
			if c.allowed != nil {
				ks["allowedModes"] = c.allowed
			}
			objs := render(t, map[string]any{"kubeletStats": ks})
			cfg := config(t, objs)
			if got := cfg.KubeletStats.Mode; string(got) != mode {
				t.Errorf("config mode %s", got)
			}
			if c.allowed != nil && len(cfg.KubeletStats.AllowedModes) != len(c.allowed) {
				t.Errorf("allowedModes %v, want %v", cfg.KubeletStats.AllowedModes, c.allowed)
			}
			proxy := c.proxy
			if proxy != cfg.KubeletStats.Allows(injector.KubeletStatsProxy) {
				t.Fatalf("the test expects proxy in use %v, the injector says %v", proxy, !proxy)
			}
			for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ClusterRole", "ClusterRoleBinding"} {
				if got := objs.find(kind, "fargate-otel-nodeproxy") != nil; got != proxy {
					t.Errorf("%s fargate-otel-nodeproxy rendered: %v", kind, got)
				}
			}
			if got := objs.find("Secret", "fargate-otel-nodeproxy-tls") != nil; got != proxy {
				t.Errorf("Secret fargate-otel-nodeproxy-tls rendered: %v", got)
			}
			direct := cfg.KubeletStats.Allows(injector.KubeletStatsDirect)
			if got := objs.find("ClusterRole", "fargate-otel-kubelet-stats-direct") != nil; got != direct {
				t.Errorf("ClusterRole fargate-otel-kubelet-stats-direct rendered: %v, direct in use: %v", got, direct)
			}
			_, ic := injectorDeployment(t, objs)
			mounted := slices.ContainsFunc(ic.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/fargate-otel/nodeproxy-ca" })
			if mounted != proxy {
				t.Errorf("the proxy's CA mounted into the injector: %v", mounted)
			}
			if !proxy {
				return
			}
			var svc corev1.Service
			objs.get(t, "Service", "fargate-otel-nodeproxy", &svc)
			if svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("https") {
				t.Errorf("proxy Service ports %+v, want 443 -> https", svc.Spec.Ports)
			}
			var pd appsv1.Deployment
			objs.get(t, "Deployment", "fargate-otel-nodeproxy", &pd)
			pc := pd.Spec.Template.Spec.Containers[0]
			if pc.Ports[0].Name != "https" || pc.Ports[0].ContainerPort != 8443 {
				t.Errorf("proxy container ports %+v, want https 8443", pc.Ports)
			}
			v := pd.Spec.Template.Spec.Volumes[0]
			if v.Secret == nil || v.Secret.SecretName != "fargate-otel-nodeproxy-tls" || len(v.Secret.Items) != 2 {
				t.Errorf("proxy volume %+v: want tls.crt and tls.key of fargate-otel-nodeproxy-tls", v)
			}
		})
	}
}

// TestCertificates: the injector's own certificates without cert-manager,
// cert-manager's objects with it.
func TestCertificates(t *testing.T) {
	t.Run("without cert-manager", func(t *testing.T) {
		objs := render(t, nil)
		if n := len(objs.of("Certificate")) + len(objs.of("Issuer")); n != 0 {
			t.Errorf("%d cert-manager objects", n)
		}
		for _, name := range []string{"fargate-otel-ca", "fargate-otel-injector-tls", "fargate-otel-nodeproxy-tls"} {
			var s corev1.Secret
			objs.get(t, "Secret", name, &s)
			if len(s.Data) != 0 || len(s.StringData) != 0 || s.Type != corev1.SecretTypeOpaque {
				t.Errorf("Secret %s: the chart must create it empty and Opaque (the injector fills it; helm upgrades leave its data)", name)
			}
		}
		d, c := injectorDeployment(t, objs)
		if !slices.Contains(c.Args, "--manage-certs") {
			t.Error("no --manage-certs")
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if (v.Name == "webhook-certs" || v.Name == "nodeproxy-ca") && (v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory) {
				t.Errorf("volume %s: want an emptyDir in memory that the injector writes", v.Name)
			}
		}
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		objs.get(t, "MutatingWebhookConfiguration", "fargate-otel-injector", &mwc)
		if _, ok := mwc.Annotations["cert-manager.io/inject-ca-from"]; ok {
			t.Error("cainjector annotation without cert-manager")
		}
	})
	t.Run("cert-manager", func(t *testing.T) {
		objs := render(t, map[string]any{"certManager": map[string]any{"enabled": true}})
		for _, name := range []string{"fargate-otel-ca", "fargate-otel-injector-tls", "fargate-otel-nodeproxy-tls"} {
			if objs.find("Secret", name) != nil {
				t.Errorf("Secret %s rendered: cert-manager creates it", name)
			}
		}
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		objs.get(t, "MutatingWebhookConfiguration", "fargate-otel-injector", &mwc)
		if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != "fargate-otel/fargate-otel-injector" {
			t.Errorf("cainjector annotation %q", got)
		}
		for name, wantSecret := range map[string]string{"fargate-otel-injector": "fargate-otel-injector-tls", "fargate-otel-nodeproxy": "fargate-otel-nodeproxy-tls"} {
			u := objs.find("Certificate", name)
			if u == nil {
				t.Fatalf("no Certificate %s", name)
			}
			spec := u.Object["spec"].(map[string]any)
			dns := fmt.Sprint(spec["dnsNames"])
			if spec["secretName"] != wantSecret || !strings.Contains(dns, name+".fargate-otel.svc") ||
				fmt.Sprint(spec["issuerRef"]) != "map[kind:Issuer name:fargate-otel-ca]" {
				t.Errorf("Certificate %s: %v", name, spec)
			}
		}
		if objs.find("Certificate", "fargate-otel-ca") == nil || objs.find("Issuer", "fargate-otel-selfsigned") == nil || objs.find("Issuer", "fargate-otel-ca") == nil {
			t.Errorf("no self-signed CA chain: %v", objs.names())
		}
		d, c := injectorDeployment(t, objs)
		if slices.Contains(c.Args, "--manage-certs") {
			t.Error("--manage-certs with cert-manager")
		}
		vols := map[string]corev1.Volume{}
		for _, v := range d.Spec.Template.Spec.Volumes {
			vols[v.Name] = v
		}
		if v := vols["webhook-certs"]; v.Secret == nil || v.Secret.SecretName != "fargate-otel-injector-tls" {
			t.Errorf("webhook-certs %+v: want cert-manager's Secret", v)
		}
		if v := vols["nodeproxy-ca"]; v.Secret == nil || v.Secret.SecretName != "fargate-otel-nodeproxy-tls" || len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "ca.crt" {
			t.Errorf("nodeproxy-ca %+v: want key ca.crt of the proxy's Secret", v)
		}
		// The injector may not touch Secrets or its webhook configuration.
		if role := ruleText(objs, "Role", "fargate-otel-injector"); strings.Contains(role, "secrets") {
			t.Errorf("with cert-manager the injector may still read or write its Secrets: %s", role)
		}
		if role := ruleText(objs, "ClusterRole", "fargate-otel-injector"); strings.Contains(role, "mutatingwebhookconfigurations") {
			t.Errorf("with cert-manager the injector may still patch its webhook configuration: %s", role)
		}
	})
	t.Run("cert-manager with an issuer of the user's", func(t *testing.T) {
		objs := render(t, map[string]any{"certManager": map[string]any{"enabled": true, "issuerRef": map[string]any{"kind": "ClusterIssuer", "name": "corp-ca"}}})
		if objs.find("Issuer", "fargate-otel-selfsigned") != nil || objs.find("Certificate", "fargate-otel-ca") != nil {
			t.Error("the chart's own CA rendered with an issuerRef")
		}
		spec := objs.find("Certificate", "fargate-otel-injector").Object["spec"].(map[string]any)
		if fmt.Sprint(spec["issuerRef"]) != "map[kind:ClusterIssuer name:corp-ca]" {
			t.Errorf("issuerRef %v", spec["issuerRef"])
		}
	})
	t.Run("validities", func(t *testing.T) {
		_, c := injectorDeployment(t, render(t, map[string]any{"certs": map[string]any{"caValidity": "43800h", "certValidity": "2160h"}}))
		if !slices.Contains(c.Args, "--ca-validity=43800h") || !slices.Contains(c.Args, "--cert-validity=2160h") {
			t.Errorf("args %v", c.Args)
		}
	})
}

// TestSchemaRejects: values.schema.json refuses what cannot work, with the
// path of the bad value.
func TestSchemaRejects(t *testing.T) {
	for name, c := range map[string]struct {
		values map[string]any
		path   string
	}{
		"typo at the top":          {map[string]any{"clustername": "x"}, "clustername"},
		"typo inside":              {map[string]any{"injector": map[string]any{"replica": 2}}, "replica"},
		"scope":                    {map[string]any{"scope": "everything"}, "/scope"},
		"kubelet stats mode":       {map[string]any{"kubeletStats": map[string]any{"mode": "kubelet"}}, "/kubeletStats/mode"},
		"interval":                 {map[string]any{"kubeletStats": map[string]any{"interval": "30 seconds"}}, "/kubeletStats/interval"},
		"failure policy":           {map[string]any{"injector": map[string]any{"failurePolicy": "ignore"}}, "/injector/failurePolicy"},
		"timeout":                  {map[string]any{"injector": map[string]any{"timeoutSeconds": 60}}, "/injector/timeoutSeconds"},
		"timeout below the budget": {map[string]any{"injector": map[string]any{"timeoutSeconds": 5}}, "/injector/timeoutSeconds"},
		"pull policy":              {map[string]any{"images": map[string]any{"pullPolicy": "Sometimes"}}, "/images/pullPolicy"},
		"image without repository": {map[string]any{"images": map[string]any{"tee": map[string]any{"repository": ""}}}, "/images/tee/repository"},
		"exporter without id":      {map[string]any{"exporters": []map[string]any{{"config": map[string]any{}}}}, "/exporters/0"},
		"exporter signal":          {map[string]any{"exporters": []map[string]any{{"id": "debug", "signals": []string{"profiles"}}}}, "/exporters/0/signals/0"},
		"log size":                 {map[string]any{"logs": map[string]any{"maxSize": "ten megabytes"}}, "/logs/maxSize"},
		"log format":               {map[string]any{"logs": map[string]any{"format": "json"}}, "/logs/format"},
		"resources":                {map[string]any{"collector": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "lots"}}}}, "/collector/resources/limits/memory"},
		"replicas":                 {map[string]any{"nodeproxy": map[string]any{"replicas": -1}}, "/nodeproxy/replicas"},
		"native sidecars":          {map[string]any{"nativeSidecars": "maybe"}, "/nativeSidecars"},
		"issuer kind":              {map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"kind": "Vault", "name": "x"}}}, "/certManager/issuerRef/kind"},
		"validity":                 {map[string]any{"certs": map[string]any{"certValidity": "1 year"}}, "/certs/certValidity"},
		"fargate sizing":           {map[string]any{"fargateSizing": "tight"}, "/fargateSizing"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := templateRaw(t, c.values)
			if err == nil {
				t.Fatalf("accepted:\n%s", firstLines(out, 5))
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), c.path) {
				t.Errorf("the error does not name %s:\n%v", c.path, err)
			}
		})
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// ruleText is the rules of a Role or ClusterRole as YAML ("" when absent).
func ruleText(objs objects, kind, name string) string {
	u := objs.find(kind, name)
	if u == nil {
		return ""
	}
	b, _ := yaml.Marshal(u.Object["rules"])
	return string(b)
}

// TestDefaultsAreTheInjectorDefaults: with default values, the config file
// says what the injector would do without one, except what only the chart
// knows (images of its version, its namespace, the gateway spelled out), so
// that values.yaml documents the product's real defaults.
func TestDefaultsAreTheInjectorDefaults(t *testing.T) {
	got := config(t, render(t, nil))
	want := injector.DefaultConfig()
	want.Images = got.Images
	want.Exporters = got.Exporters
	want.KubeletStats.NodeProxy.Namespace = namespace
	// The chart turns the fleet on (TestFleetChart checks its endpoint).
	want.Fleet = got.Fleet
	if !equality.Semantic.DeepEqual(got, want) {
		gy, _ := yaml.Marshal(got)
		wy, _ := yaml.Marshal(want)
		t.Errorf("the chart's default config differs from injector.DefaultConfig():\nchart:\n%s\ninjector:\n%s", gy, wy)
	}
}

// TestVersions: one version for the chart, its appVersion, the image tags
// (make images tags them with internal/version) and the image repositories.
func TestVersions(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.Version != version.Version || chart.AppVersion != version.Version {
		t.Errorf("Chart.yaml version %s, appVersion %s; internal/version.Version %s: bump them together", chart.Version, chart.AppVersion, version.Version)
	}
	data, err = os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Images map[string]any `json:"images"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	def := injector.DefaultConfig().Images
	if def.Tee != version.Image("fargate-otel-tee") || def.Collector != version.Image("fargate-otel-collector") {
		t.Errorf("the injector's default images %s, %s are not those of this version", def.Tee, def.Collector)
	}
	for _, b := range []string{"injector", "nodeproxy", "tee", "collector", "fleet"} {
		img, _ := values.Images[b].(map[string]any)
		if img["repository"] != version.ImageRegistry+"/fargate-otel-"+b || img["tag"] != "" {
			t.Errorf("images.%s = %v: want repository %s/fargate-otel-%s and an empty tag (the appVersion)", b, img, version.ImageRegistry, b)
		}
	}
}
