package podindex

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func pod(ns, name, uid, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID("uid-" + uid), Labels: map[string]string{"big": "label"}},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "sa",
			Containers: []corev1.Container{{Name: "app", Image: "x", Env: []corev1.EnvVar{{Name: "SECRET", Value: "v"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// poll waits for cond with a deadline (the watch delivers asynchronously).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIndexFollowsPods(t *testing.T) {
	client := fake.NewClientset(pod("ns", "a", "a", "node-a"))
	idx, err := New(client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idx.Start(ctx)
	if !idx.WaitForSync(ctx) {
		t.Fatal("no sync")
	}
	p, err := idx.Get(ctx, "ns", "a")
	if err != nil || p == nil || p.UID != "uid-a" || p.NodeName != "node-a" || p.ServiceAccount != "sa" || p.Finished {
		t.Fatalf("Get = %+v, %v", p, err)
	}
	if idx.OthersOnNode("node-a", "uid-a") {
		t.Error("OthersOnNode true with only the caller on the node")
	}
	if _, err := client.CoreV1().Pods("ns").Create(ctx, pod("ns", "b", "b", "node-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "pod b in the index", func() bool { return idx.OthersOnNode("node-a", "uid-a") })
	if err := client.CoreV1().Pods("ns").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "pod a gone", func() bool { p, _ := idx.Get(ctx, "ns", "a"); return p == nil })
	// What is held is stripped: no spec, no env, no labels.
	obj, ok, _ := idx.store.GetByKey("ns/b")
	held := obj.(*corev1.Pod)
	if !ok || len(held.Spec.Containers) != 0 || len(held.Labels) != 0 || held.Spec.NodeName != "node-a" {
		t.Fatalf("held pod %+v, want only identity, node and service account", held)
	}
}

func TestGetFallsBackToAPIServer(t *testing.T) {
	client := fake.NewClientset(pod("ns", "young", "y", "node-y"))
	idx, err := New(client) // not started: the watch has delivered nothing
	if err != nil {
		t.Fatal(err)
	}
	p, err := idx.Get(context.Background(), "ns", "young")
	if err != nil || p == nil || p.UID != "uid-y" {
		t.Fatalf("Get = %+v, %v, want the pod from a GET", p, err)
	}
	p, err = idx.Get(context.Background(), "ns", "missing")
	if err != nil || p != nil {
		t.Fatalf("Get(missing) = %+v, %v, want nil, nil", p, err)
	}
}

func TestFinishedAndDefaultServiceAccount(t *testing.T) {
	done := pod("ns", "job", "j", "node-j")
	done.Status.Phase = corev1.PodSucceeded
	done.Spec.ServiceAccountName = ""
	idx, err := NewStatic([]corev1.Pod{*done})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := idx.Get(context.Background(), "ns", "job")
	if p == nil || !p.Finished || p.ServiceAccount != "default" {
		t.Fatalf("Get = %+v, want finished with service account default", p)
	}
	if idx.Len() != 1 {
		t.Fatalf("Len = %d", idx.Len())
	}
}

// TestContainerNames: the index knows each pod's regular and init containers
// (the containers whose logs it may read), not its ephemeral ones, and a
// pod's own annotations cannot add to them, from the watch or from a GET.
func TestContainerNames(t *testing.T) {
	p := pod("ns", "web", "w", "node-w")
	p.Annotations = map[string]string{containersKey: "kube-apiserver,etcd"}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "otel-collector"})
	p.Spec.InitContainers = []corev1.Container{{Name: "fargate-otel-init"}}
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger"}}}
	want := "app,otel-collector,fargate-otel-init"
	static, err := NewStatic([]corev1.Pod{*p})
	if err != nil {
		t.Fatal(err)
	}
	viaGet, err := New(fake.NewClientset(p)) // not started: answers by GET
	if err != nil {
		t.Fatal(err)
	}
	for name, idx := range map[string]*Index{"watch": static, "get": viaGet} {
		got, err := idx.Get(context.Background(), "ns", "web")
		if err != nil || got == nil {
			t.Fatalf("%s: Get = %v, %v", name, got, err)
		}
		if s := strings.Join(got.Containers, ","); s != want {
			t.Errorf("%s: containers %q, want %q", name, s, want)
		}
	}
	empty := pod("ns", "bare", "b", "node-b")
	empty.Spec.Containers = nil
	idx, _ := NewStatic([]corev1.Pod{*empty})
	if got, _ := idx.Get(context.Background(), "ns", "bare"); got == nil || len(got.Containers) != 0 {
		t.Fatalf("pod without containers: %+v", got)
	}
}
