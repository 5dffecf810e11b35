//go:build e2e

package product

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fargate-otel/fargate-otel/e2e/cluster"
	"github.com/fargate-otel/fargate-otel/e2e/scenario"
	"github.com/fargate-otel/fargate-otel/e2e/sinkapi"
	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/nodeproxy/rbac"
)

// The api log source on the real kubelet: a Deployment whose image's
// registry answers 500, so that the injector cannot read its entrypoint
// and gives its container the api source; the follower reads the
// container's log from the kubelet through the node proxy. Its app writes
// apiLines numbered lines on each stream and exits, so the kubelet
// restarts it (a container restart); meanwhile the collector is restarted
// (SIGTERM, as the kubelet does when a liveness probe fails) and the
// follower killed (SIGKILL). Every line of both runs must arrive once.
const (
	nsLogs   = "logs-api"
	apiApp   = "unread"
	apiLines = 20
)

// 500 ms between lines on one stream: a run takes 10 s.
var apiArgs = []string{fmt.Sprintf("-lines=%d", apiLines), "-interval=500ms", "-traces-every=-1"}

func testLogSourceAPI(ctx context.Context, t *testing.T, e *env) {
	cs := e.c.Client
	ref := importUnreadable(ctx, t, e)
	if err := scenario.EnsureNamespace(ctx, cs, scenario.Namespace(nsLogs, map[string]string{scenario.InjectLabel: "enabled"})); err != nil {
		t.Fatal(err)
	}
	if err := scenario.Poll(ctx, time.Minute, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(nsLogs).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	failedBefore := e.registry.Failed()
	createDeployment(ctx, t, e, scenario.AppDeployment(nsLogs, apiApp, ref, corev1.PullIfNotPresent, apiArgs))
	p := appPod(ctx, t, e, nsLogs, apiApp)
	if e.registry.Failed() == failedBefore {
		t.Errorf("the registry answered no request with 500: the injector did not try to read %s", ref)
	}

	// Injected with the api source: the follower after the collector, the
	// app's command untouched.
	s, ok := status(p)
	if !ok {
		t.Fatalf("%s/%s was not injected; events:%s", nsLogs, p.Name, events(ctx, e, nsLogs, p.Name))
	}
	if src := s.LogSources[scenario.AppName]; src != injector.LogSourceAPI || len(s.Containers) != 0 || len(s.NotCaptured()) != 0 {
		t.Errorf("status %+v: want the app's log source api", *s)
	}
	var names []string
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if want := []string{injector.CollectorContainerName, injector.FollowerContainerName}; !slices.Equal(names, want) {
		t.Errorf("init containers %v, want %v", names, want)
	}
	if c := p.Spec.Containers[0]; len(c.Command) != 0 {
		t.Errorf("the app's command was changed: %q", c.Command)
	}
	p = waitRunning(ctx, t, e, nsLogs, p.Name)
	t.Logf("%s/%s runs; the follower: %q", nsLogs, p.Name, containerLog(ctx, e, nsLogs, p.Name, injector.FollowerContainerName))

	f := sinkapi.Filter{Namespace: nsLogs, Pod: p.Name, Container: scenario.AppName}
	arrived := func(restart, n int) func(context.Context) error {
		return func(ctx context.Context) error {
			got, err := runLines(ctx, e, f)
			if err != nil {
				return err
			}
			if len(got[restart]) < n {
				return fmt.Errorf("%d lines of run %d at the sink, waiting for %d", len(got[restart]), restart, n)
			}
			return nil
		}
	}
	if err := scenario.Poll(ctx, 90*time.Second, arrived(0, 6)); err != nil {
		t.Fatalf("%v\nthe follower's log:\n%s", err, containerLog(ctx, e, nsLogs, p.Name, injector.FollowerContainerName))
	}

	// (a) The collector restarts while the app writes; then the follower
	// is killed.
	restartContainer(ctx, t, e, p, injector.CollectorContainerName, "SIGTERM")
	if err := scenario.Poll(ctx, time.Minute, arrived(0, 16)); err != nil {
		t.Fatal(err)
	}
	restartContainer(ctx, t, e, p, injector.FollowerContainerName, "SIGKILL")

	// (b) The app exits after its lines, and the kubelet starts it again.
	if err := scenario.Poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		cur, err := cs.CoreV1().Pods(nsLogs).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range cur.Status.ContainerStatuses {
			if c.Name == scenario.AppName && c.RestartCount >= 1 {
				return arrived(1, 2*apiLines)(ctx)
			}
		}
		return fmt.Errorf("the app has not restarted: %s", cluster.DescribePod(cur))
	}); err != nil {
		t.Fatalf("%v\nthe follower's log:\n%s", err, containerLog(ctx, e, nsLogs, p.Name, injector.FollowerContainerName))
	}

	// Both runs, both streams, every line once; the follower said nothing
	// was missing.
	logs, err := e.sink.Logs(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, l := range logs {
		restart := fmt.Sprint(l.Resource["k8s.container.restart_count"])
		if restart != "0" && restart != "1" {
			continue // the next run may have begun
		}
		counts[restart+" "+l.Body]++
		if strings.HasPrefix(l.Body, "fargate-otel-tee: ") {
			t.Errorf("the follower noted in run %s: %s", restart, l.Body)
			continue
		}
		// containerLogs merges the streams: every line is stdout.
		if l.Stream() != "stdout" {
			t.Errorf("%q: log.iostream %q, want stdout (the kubelet merges the streams)", l.Body, l.Stream())
		}
		for k, v := range map[string]string{"k8s.pod.name": p.Name, "k8s.namespace.name": nsLogs, "k8s.pod.uid": string(p.UID), "k8s.node.name": e.c.NodeName} {
			if got := fmt.Sprint(l.Resource[k]); got != v {
				t.Errorf("%q: resource %s = %q, want %q", l.Body, k, got, v)
			}
		}
	}
	var wrong []string
	for _, restart := range []string{"0", "1"} {
		for i := 1; i <= apiLines; i++ {
			last := ""
			if i == apiLines {
				last = " (last)"
			}
			for _, stream := range []string{"stdout", "stderr"} {
				key := fmt.Sprintf("%s demo-app %s line %d%s", restart, stream, i, last)
				if counts[key] != 1 {
					wrong = append(wrong, fmt.Sprintf("run %s %q: %d times", restart, key[2:], counts[key]))
				}
				delete(counts, key)
			}
		}
	}
	for key, n := range counts {
		wrong = append(wrong, fmt.Sprintf("unexpected %q: %d times", key, n))
	}
	sort.Strings(wrong)
	if len(wrong) > 0 {
		t.Errorf("not exactly once across a collector restart, a follower kill and an app restart:\n%s", strings.Join(wrong, "\n"))
	} else {
		t.Logf("%d lines of runs 0 and 1 arrived, each once", 4*apiLines)
	}
}

// runLines are the app lines at the sink, by restart (k8s.container.restart_count).
func runLines(ctx context.Context, e *env, f sinkapi.Filter) (map[int][]string, error) {
	logs, err := e.sink.Logs(ctx, f)
	if err != nil {
		return nil, err
	}
	out := map[int][]string{}
	for _, l := range logs {
		var restart int
		if _, err := fmt.Sscan(fmt.Sprint(l.Resource["k8s.container.restart_count"]), &restart); err == nil && strings.HasPrefix(l.Body, "demo-app ") {
			out[restart] = append(out[restart], l.Body)
		}
	}
	return out, nil
}

// importUnreadable puts the demo app's image, under UnreadableRepository
// (which the registry answers 500 for), into the node's containerd, and
// returns its reference.
func importUnreadable(ctx context.Context, t *testing.T, e *env) string {
	t.Helper()
	src, err := name.ParseReference(e.appImage, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Image(src, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("read %s back from the registry: %v", e.appImage, err)
	}
	// An image of its own (one label more): the kubelet pulled the demo
	// app's image itself, so for an image with that ID it would check the
	// pod's right to it with the registry (KubeletEnsureSecretPulledImages),
	// as it does not for an image it never pulled.
	cf, err := pushed.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := *cf.Config.DeepCopy()
	cfg.Labels = map[string]string{"org.opencontainers.image.title": "fargate-otel demo app, from a registry that is down"}
	img, err := mutate.Config(pushed, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := cluster.RegistryHost + "/" + scenario.UnreadableRepository + ":" + d.Hex[:12]
	archive, err := scenario.WriteArchive(t.TempDir(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.ImportImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
	return ref
}

// restartContainer signals one container's process through the node's
// containerd (the container's task, as the kubelet would on a failed
// liveness probe or an OOM kill) and waits until the kubelet has started
// it again.
func restartContainer(ctx context.Context, t *testing.T, e *env, p *corev1.Pod, container, signal string) {
	t.Helper()
	cs := e.c.Client
	cur, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, ok := initStatus(cur, container)
	if !ok || st.State.Running == nil {
		t.Fatalf("%s of %s/%s is not running: %s", container, p.Namespace, p.Name, cluster.DescribePod(cur))
	}
	id := strings.TrimPrefix(st.ContainerID, "containerd://")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "ctr", "--address", e.c.ContainerdSocket, "--namespace", "k8s.io",
		"tasks", "kill", "--signal", signal, id).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks kill --signal %s %s (%s): %v: %s", signal, id, container, err, out)
	}
	err = scenario.Poll(ctx, 90*time.Second, func(ctx context.Context) error {
		now, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s, ok := initStatus(now, container); ok && s.RestartCount > st.RestartCount && s.State.Running != nil {
			return nil
		}
		return fmt.Errorf("%s not started again: %s", container, cluster.DescribePod(now))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s, and started again by the kubelet", container, signal)
}

func initStatus(p *corev1.Pod, container string) (corev1.ContainerStatus, bool) {
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name == container {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// The api log source gives no workload any right to logs: the API server
// (SubjectAccessReview) says that no service account but the control
// plane's controllers may get pods/log, and that only the node proxy's may
// get nodes/proxy, besides those a cluster admin gave kubelet stats mode
// direct (the injector's binding, for namespaces labelled so).
func testNoLogAccess(ctx context.Context, t *testing.T, e *env) {
	cs := e.c.Client
	sas, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]bool{scenario.ReleaseNamespace + "/" + scenario.NodeProxyServiceAccount: true}
	if crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, rbac.DirectBinding, metav1.GetOptions{}); err == nil {
		for _, s := range crb.Subjects {
			ns, err := cs.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
			if err != nil || ns.Labels[scenario.KubeletStatsLabel] != string(injector.KubeletStatsDirect) {
				t.Errorf("the direct binding names %s/%s, whose namespace is not labelled %s=direct", s.Namespace, s.Name, scenario.KubeletStatsLabel)
			}
			holders[s.Namespace+"/"+s.Name] = true
		}
	}
	// The control plane's own controllers (bound by the bootstrap policy,
	// system:controller:*; on EKS they run in the control plane, not in
	// pods): the garbage collector and the namespace controller may read
	// every resource, subresources included.
	controllers := map[string]bool{}
	crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, crb := range crbs.Items {
		if strings.HasPrefix(crb.Name, "system:controller:") {
			for _, s := range crb.Subjects {
				if s.Kind == "ServiceAccount" {
					controllers[s.Namespace+"/"+s.Name] = true
				}
			}
		}
	}
	api := appPod(ctx, t, e, nsLogs, apiApp)
	if holders[nsLogs+"/"+serviceAccount(api)] {
		t.Errorf("the api source pod's service account %s/%s holds nodes/proxy", nsLogs, serviceAccount(api))
	}
	checked := 0
	for _, sa := range sas.Items {
		who := sa.Namespace + "/" + sa.Name
		if controllers[who] {
			continue
		}
		if got := mayDo(ctx, t, e, sa.Namespace, sa.Name, authzv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: e.c.NodeName}); got != holders[who] {
			t.Errorf("service account %s: may get nodes/proxy = %v, want %v", who, got, holders[who])
		}
		for _, ns := range []string{sa.Namespace, ""} {
			if mayDo(ctx, t, e, sa.Namespace, sa.Name, authzv1.ResourceAttributes{Verb: "get", Resource: "pods", Subresource: "log", Namespace: ns}) {
				t.Errorf("service account %s may get pods/log in namespace %q", who, ns)
			}
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d service accounts: the check proves little", checked)
	}
	t.Logf("%d service accounts asked (%d of the control plane's controllers left out); nodes/proxy only for %v", checked, len(controllers), keysOf(holders))
}

func mayDo(ctx context.Context, t *testing.T, e *env, ns, sa string, attrs authzv1.ResourceAttributes) bool {
	t.Helper()
	r, err := e.c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + ns + ":" + sa,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &attrs,
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
