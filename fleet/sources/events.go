package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fargate-otel/fargate-otel/fleet/registry"
)

// Event reason and reporting controller of the fleet's Events.
const (
	ReasonInvalid       = "InvalidFleetSettings"
	ReportingController = "fargate-otel.io/fleet"
)

// Events records a Warning Event on a ConfigMap whose settings the fleet
// refuses, once per version and problem: every replica reads the same
// ConfigMap, and the Event's name is derived from what it reports, so the
// second replica's create is an AlreadyExists and nothing is repeated.
type Events struct {
	client   kubernetes.Interface
	instance string
	log      logr.Logger

	mu   sync.Mutex
	seen map[string]bool
}

// NewEvents reports as instance (the replica's pod name); a nil client
// records nothing.
func NewEvents(client kubernetes.Interface, instance string, log logr.Logger) *Events {
	return &Events{client: client, instance: instance, log: log, seen: map[string]bool{}}
}

// Invalid records that what cm holds (what: "exporters", "live settings")
// is refused, with msg saying why.
func (e *Events) Invalid(ctx context.Context, cm *corev1.ConfigMap, what, msg string) {
	if e == nil || e.client == nil || cm == nil {
		return
	}
	sum := sha256.Sum256([]byte(string(cm.UID) + "\x00" + cm.ResourceVersion + "\x00" + what + "\x00" + msg))
	name := cm.Name + ".fleet-" + hex.EncodeToString(sum[:6])
	e.mu.Lock()
	if e.seen[name] {
		e.mu.Unlock()
		return
	}
	if len(e.seen) > 10000 {
		e.seen = map[string]bool{}
	}
	e.seen[name] = true
	e.mu.Unlock()

	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: cm.Namespace},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: ReportingController,
		ReportingInstance:   registry.Cap(e.instance, 128),
		Action:              "Validate",
		Reason:              ReasonInvalid,
		Type:                corev1.EventTypeWarning,
		Regarding: corev1.ObjectReference{
			Kind: "ConfigMap", APIVersion: "v1", Namespace: cm.Namespace, Name: cm.Name,
			UID: cm.UID, ResourceVersion: cm.ResourceVersion,
		},
		Note: registry.Cap("The fleet refuses the "+what+" of this ConfigMap: "+msg, 1000),
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.client.EventsV1().Events(cm.Namespace).Create(cctx, ev, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.log.Info("cannot record an Event on the ConfigMap", "configmap", cm.Namespace+"/"+cm.Name, "error", err.Error())
	}
}
