package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// StatusAnnotation is the injector's record of what it injected
// (injector/annotations.Status); its kubeletStats field says the mode a pod
// was injected with.
const StatusAnnotation = "fargate-otel.io/status"

// directBinding reconciles the single ClusterRoleBinding of mode direct.
type directBinding struct {
	cache cache.Cache
	api   client.Client
	cfg   Config
	log   logr.Logger
}

func setupDirectBinding(mgr manager.Manager, c cache.Cache, api client.Client, cfg Config, log logr.Logger) error {
	r := &directBinding{cache: c, api: api, cfg: cfg, log: log}
	one := reconcile.Request{NamespacedName: types.NamespacedName{Name: cfg.DirectBinding}}
	injected := predicate.NewTypedPredicateFuncs(func(p *corev1.Pod) bool { return p.Annotations[StatusAnnotation] != "" })
	err := builder.ControllerManagedBy(mgr).
		Named("fargate-otel-direct-binding").
		WatchesRawSource(source.Kind(c, &corev1.Namespace{}, handler.TypedEnqueueRequestsFromMapFunc(func(context.Context, *corev1.Namespace) []reconcile.Request {
			return []reconcile.Request{one}
		}))).
		WatchesRawSource(source.Kind(c, &corev1.Pod{}, handler.TypedEnqueueRequestsFromMapFunc(func(context.Context, *corev1.Pod) []reconcile.Request {
			return []reconcile.Request{one}
		}), injected)).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(cfg.SkipNameValidation), MaxConcurrentReconciles: 1}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("nodeproxy direct binding: %w", err)
	}
	return nil
}

func (r *directBinding) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var nsList corev1.NamespaceList
	if err := r.cache.List(ctx, &nsList); err != nil {
		return reconcile.Result{}, err
	}
	optedIn := map[string]bool{}
	for _, ns := range nsList.Items {
		if ns.DeletionTimestamp == nil {
			optedIn[ns.Name] = true
		}
	}
	var pods corev1.PodList
	if err := r.cache.List(ctx, &pods); err != nil {
		return reconcile.Result{}, err
	}
	subjects := DirectSubjects(pods.Items, optedIn)

	var crb rbacv1.ClusterRoleBinding
	err := r.api.Get(ctx, client.ObjectKey{Name: r.cfg.DirectBinding}, &crb)
	switch {
	case apierrors.IsNotFound(err):
		if len(subjects) == 0 {
			return reconcile.Result{}, nil
		}
		crb = rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: r.cfg.DirectBinding, Labels: managedLabels(),
				Annotations: map[string]string{"fargate-otel.io/description": "kubelet stats mode direct: get nodes/proxy for the service accounts of injected pods; kept in sync by the fargate-otel injector"}},
			RoleRef:  r.roleRef(),
			Subjects: subjects,
		}
		if err := r.api.Create(ctx, &crb); err != nil {
			return reconcile.Result{}, fmt.Errorf("create ClusterRoleBinding %s: %w (the injector needs bind on ClusterRole %s)", r.cfg.DirectBinding, err, r.cfg.DirectClusterRole)
		}
		r.log.Info("granted kubelet stats access", "binding", crb.Name, "subjects", subjectNames(subjects))
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("get ClusterRoleBinding %s: %w", r.cfg.DirectBinding, err)
	case !managed(&crb):
		return reconcile.Result{}, fmt.Errorf("ClusterRoleBinding %s exists but is not managed by fargate-otel (label %s): delete it or rename the injector's binding", r.cfg.DirectBinding, managedLabelText())
	}

	if len(subjects) == 0 || crb.RoleRef != r.roleRef() {
		// roleRef is immutable: a wrong one is replaced on the next pass.
		if err := r.api.Delete(ctx, &crb, client.Preconditions{UID: &crb.UID}); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("delete ClusterRoleBinding %s: %w", r.cfg.DirectBinding, err)
		}
		r.log.Info("removed kubelet stats access", "binding", crb.Name, "subjects", subjectNames(crb.Subjects))
		if len(subjects) > 0 {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, nil
	}
	if slices.Equal(crb.Subjects, subjects) {
		return reconcile.Result{}, nil
	}
	crb.Subjects = subjects
	if err := r.api.Update(ctx, &crb); err != nil {
		return reconcile.Result{}, fmt.Errorf("update ClusterRoleBinding %s: %w", r.cfg.DirectBinding, err)
	}
	r.log.Info("updated kubelet stats access", "binding", crb.Name, "subjects", subjectNames(subjects))
	return reconcile.Result{}, nil
}

func (r *directBinding) roleRef() rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.cfg.DirectClusterRole}
}

// DirectSubjects are the service accounts that mode direct must grant: those
// of pods injected in mode direct, in opted-in namespaces, that have not
// finished; sorted and without duplicates.
func DirectSubjects(pods []corev1.Pod, optedIn map[string]bool) []rbacv1.Subject {
	seen := map[[2]string]bool{}
	var out []rbacv1.Subject
	for i := range pods {
		p := &pods[i]
		if !optedIn[p.Namespace] || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if injectedMode(p.Annotations[StatusAnnotation]) != ModeDirect {
			continue
		}
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		k := [2]string{p.Namespace, sa}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: p.Namespace, Name: sa})
	}
	slices.SortFunc(out, func(a, b rbacv1.Subject) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// injectedMode reads kubeletStats from the status annotation ("" when the
// annotation is absent or unreadable).
func injectedMode(status string) string {
	if status == "" {
		return ""
	}
	var s struct {
		KubeletStats string `json:"kubeletStats"`
	}
	if json.Unmarshal([]byte(status), &s) != nil {
		return ""
	}
	return s.KubeletStats
}

// removeDirectBinding deletes the binding of an earlier direct mode.
func removeDirectBinding(ctx context.Context, api client.Client, cfg Config, log logr.Logger) {
	var crb rbacv1.ClusterRoleBinding
	err := api.Get(ctx, client.ObjectKey{Name: cfg.DirectBinding}, &crb)
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		log.Error(err, "cannot check for a binding left by mode direct", "binding", cfg.DirectBinding)
		return
	}
	if !managed(&crb) {
		return
	}
	if err := api.Delete(ctx, &crb, client.Preconditions{UID: &crb.UID}); err != nil && !apierrors.IsNotFound(err) {
		log.Error(err, "cannot remove the binding left by mode direct: delete it by hand", "binding", cfg.DirectBinding)
		return
	}
	log.Info("mode direct is not allowed: removed the binding an earlier direct mode left; pods injected then lose kubelet stats until they are re-created", "binding", cfg.DirectBinding, "modes", cfg.Modes, "subjects", subjectNames(crb.Subjects))
}

func subjectNames(s []rbacv1.Subject) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Namespace + "/" + x.Name
	}
	return out
}

func managedLabelText() string { return "app.kubernetes.io/managed-by=fargate-otel-injector" }
