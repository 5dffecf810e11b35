// Package certs generates and rotates, without cert-manager, the serving
// certificates of a fargate-otel install: the webhook's (with the caBundle of
// the MutatingWebhookConfiguration kept in sync) and the node proxy's (whose
// CA the injector publishes to collectors).
//
// Everything lives in Secrets of the release namespace that the Helm chart
// creates empty: a CA Secret (current CA and key, the next CA and key, the
// previous CA), and one Secret per serving certificate with tls.crt, tls.key
// and ca.crt (the bundle its clients trust), the keys cert-manager writes.
//
//   - The pure core (PlanCA, PlanLeaf) decides what to keep and what to
//     issue at a given time: a certificate is renewed when less than a third
//     of its life is left; a next CA is issued at half of the current one's
//     life and put in every bundle at once, so that clients that read their
//     bundle only at start (collectors) trust it before it signs anything.
//   - Rotator.Reconcile applies a plan: CA Secret, then caBundle, then the
//     serving Secrets, each write guarded by the object's resourceVersion
//     (or a JSON patch test), so two replicas never overwrite each other.
//   - Syncer writes Secret keys to files on every replica, as the kubelet
//     does for a Secret volume but within seconds.
//
// Setup wires both into a controller-runtime manager: the rotator on the
// elected leader, the syncer everywhere.
package certs
