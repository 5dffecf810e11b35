package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server/types"

	"github.com/fargate-otel/fargate-otel/fleet/api"
	"github.com/fargate-otel/fargate-otel/fleet/desired"
	"github.com/fargate-otel/fargate-otel/fleet/redact"
	"github.com/fargate-otel/fargate-otel/fleet/registry"
	"github.com/fargate-otel/fargate-otel/fleet/sources"
	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// conn is one agent's connection. opamp-go never calls its callbacks
// concurrently for one connection; pushes come from other goroutines, so
// what they share is under mu.
type conn struct {
	s        *Server
	caller   callerauth.Caller
	token    string
	uid      string
	uidBytes []byte
	// kind is the agent's, from its token's service account (kindOf).
	kind string
	oc   types.Connection

	// Only the callbacks' goroutine touches these.
	identified bool
	lastSeq    uint64
	// early are figures that came before the agent said who it is (a
	// reconnect sends them at once, and they are not part of the full
	// state it reports next): recorded once it has.
	early   *registry.FiguresReport
	srcKey  *sources.Key
	srcData string

	mu        sync.Mutex
	source    desired.Source
	sourceErr string
	desired   desired.Desired
	sent      []byte // hash of the settings last sent on this connection
	closed    bool
}

func (c *conn) onConnected(_ context.Context, oc types.Connection) {
	c.oc = oc
	c.s.mu.Lock()
	c.s.conns++
	c.s.mu.Unlock()
}

func (c *conn) onClose(types.Connection) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.s.mu.Lock()
	c.s.conns--
	c.s.mu.Unlock()
	if c.identified {
		c.s.reg.Disconnect(c.uid, c)
		c.s.metrics.agents.Dec()
	}
	c.setSource(desired.Source{}, nil)
	// A reconnect reviews the token again: a deleted pod's token is then
	// refused by the API server, not accepted from the cache.
	c.s.o.Auth.Forget(c.token)
}

// refuse tells the agent why and closes the connection.
func (c *conn) refuse(ctx context.Context, reason, msg string) *protobufs.ServerToAgent {
	c.s.metrics.refused.WithLabelValues(reason).Inc()
	c.s.log.Info("agent refused", "reason", reason, "detail", msg, "pod", c.caller.Namespace+"/"+c.caller.PodName)
	_ = c.oc.Send(ctx, &protobufs.ServerToAgent{
		InstanceUid: c.uidBytes,
		ErrorResponse: &protobufs.ServerErrorResponse{
			Type:         protobufs.ServerErrorResponseType_ServerErrorResponseType_BadRequest,
			ErrorMessage: msg,
		},
	})
	_ = c.oc.Disconnect()
	return nil
}

func (c *conn) onMessage(ctx context.Context, oc types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	if c.oc == nil {
		c.oc = oc
	}
	c.s.metrics.messages.Inc()
	if !bytes.Equal(msg.GetInstanceUid(), c.uidBytes) {
		return c.refuse(ctx, "forged_instance_uid", fmt.Sprintf(
			"instance_uid %s is not the uid of pod %s/%s (%s), which the token was issued for: an agent reports only as its own pod (set instance_uid from POD_UID)",
			uidString(msg.GetInstanceUid()), c.caller.Namespace, c.caller.PodName, c.uid))
	}
	if d := msg.GetAgentDescription(); d != nil {
		if err := c.checkKind(d); err != "" {
			return c.refuse(ctx, "forged_kind", err)
		}
		if err := c.checkIdentity(d); err != "" {
			return c.refuse(ctx, "forged_identity", err)
		}
	}
	resp := &protobufs.ServerToAgent{InstanceUid: c.uidBytes}
	reply := false
	if !c.identified {
		if msg.GetAgentDescription() == nil {
			// A reconnect (to this replica or another) starts with whatever
			// changed: the agent is listed, and sent settings, only once
			// it has said who it is and that checked against its token.
			c.lastSeq = msg.GetSequenceNum()
			if f, ok := c.figures(msg); ok {
				c.early = &f
			}
			resp.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
			return resp
		}
		c.identified = true
		reply = true // the first answer carries the server's capabilities
		id := registry.Identity{UID: c.uid, Namespace: c.caller.Namespace, Pod: c.caller.PodName, ServiceAccount: c.caller.ServiceAccount, Kind: c.kind}
		if prev, ok := c.s.reg.Connect(id, c).(*conn); ok && prev != nil && prev.oc != nil {
			_ = prev.oc.Disconnect()
		}
		c.s.metrics.agents.Inc()
	} else if msg.GetSequenceNum() != c.lastSeq+1 {
		// A message was lost: ask for everything again.
		resp.Flags |= uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
		reply = true
	}
	c.lastSeq = msg.GetSequenceNum()

	if msg.GetAgentDisconnect() != nil {
		c.s.reg.Disconnect(c.uid, c)
		return nil
	}
	c.s.reg.Seen(c.uid, c)
	if d := msg.GetAgentDescription(); d != nil {
		desc := describe(d)
		if c.caller.NodeName != "" {
			// The API server binds the node into a pod's token: that one is
			// vouched for, what the agent says is not.
			desc.Node = c.caller.NodeName
		}
		c.s.reg.SetDescription(c.uid, c, desc)
		if c.kind == api.KindSidecar {
			// A gateway's config is the chart's: it has no exporters
			// source, and no namespace ConfigMap is read for it.
			src, err := desired.ParseSource(desc.ExportersSource)
			c.setSource(src, err)
		}
	}
	if h := msg.GetHealth(); h != nil {
		c.s.reg.SetHealth(c.uid, c, registry.HealthFrom(h))
	}
	if ec := msg.GetEffectiveConfig(); ec != nil {
		if f := ec.GetConfigMap().GetConfigMap()[EffectiveConfigName]; f != nil {
			c.s.reg.SetEffectiveConfig(c.uid, c, string(redact.YAML(f.GetBody())))
		}
	}
	if rs := msg.GetRemoteConfigStatus(); rs != nil {
		c.s.reg.SetRemoteStatus(c.uid, c, hex.EncodeToString(rs.GetLastRemoteConfigHash()),
			strings.TrimPrefix(rs.GetStatus().String(), "RemoteConfigStatuses_"), rs.GetErrorMessage())
	}
	if f, ok := c.figures(msg); ok {
		c.s.reg.AddFigures(c.uid, c, f)
	} else if c.early != nil {
		c.s.reg.AddFigures(c.uid, c, *c.early)
	}
	c.early = nil

	c.refreshDesired()
	if rc := c.takeRemoteConfig(); rc != nil {
		resp.RemoteConfig = rc
		reply = true
	}
	if !reply {
		return nil
	}
	return resp
}

// figures reads the message's figures report, if it carries a valid one.
func (c *conn) figures(msg *protobufs.AgentToServer) (registry.FiguresReport, bool) {
	cm := msg.GetCustomMessage()
	if cm == nil || cm.GetCapability() != FiguresCapability || cm.GetType() != FiguresMessageType {
		return registry.FiguresReport{}, false
	}
	f, err := registry.ParseFigures(cm.GetData())
	if err != nil {
		c.s.metrics.refused.WithLabelValues("bad_figures").Inc()
		return registry.FiguresReport{}, false
	}
	return f, true
}

// checkKind compares the kind the agent says (an agent of an earlier
// release says none) with the kind of its token: a sidecar cannot pass as a
// gateway to be listed as one, nor a gateway's agent as a sidecar.
func (c *conn) checkKind(d *protobufs.AgentDescription) string {
	for _, kv := range d.GetIdentifyingAttributes() {
		if kv.GetKey() != KindAttribute {
			continue
		}
		if got := kv.GetValue().GetStringValue(); got != c.kind {
			why := "only the gateway's service account " + c.s.o.GatewayNamespace + "/" + c.s.o.GatewayServiceAccount + " is a gateway"
			if c.s.o.GatewayServiceAccount == "" {
				why = "this fleet server knows no gateway (--gateway-service-account is empty)"
			}
			return fmt.Sprintf("the agent says %s=%q, but its token is service account %s/%s of pod %s/%s, which is a %s: %s",
				KindAttribute, registry.Cap(got, 64), c.caller.Namespace, c.caller.ServiceAccount, c.caller.Namespace, c.caller.PodName, c.kind, why)
		}
	}
	return ""
}

// checkIdentity compares what the agent says it is with its token.
func (c *conn) checkIdentity(d *protobufs.AgentDescription) string {
	want := map[string]string{
		"k8s.pod.uid":         c.caller.PodUID,
		"service.instance.id": c.caller.PodUID,
		"k8s.pod.name":        c.caller.PodName,
		"k8s.namespace.name":  c.caller.Namespace,
	}
	for _, kv := range d.GetIdentifyingAttributes() {
		w, ok := want[kv.GetKey()]
		if got := kv.GetValue().GetStringValue(); ok && got != w {
			return fmt.Sprintf("the agent says %s=%q, but its token is pod %s/%s (uid %s): an agent reports only as its own pod",
				kv.GetKey(), registry.Cap(got, 128), c.caller.Namespace, c.caller.PodName, c.caller.PodUID)
		}
	}
	return ""
}

func describe(d *protobufs.AgentDescription) registry.Description {
	attrs := map[string]string{}
	for _, kvs := range [][]*protobufs.KeyValue{d.GetIdentifyingAttributes(), d.GetNonIdentifyingAttributes()} {
		for _, kv := range kvs {
			attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
	}
	return registry.Description{
		Node:             attrs["k8s.node.name"],
		Cluster:          attrs["k8s.cluster.name"],
		CollectorVersion: attrs["service.version"],
		InjectorVersion:  attrs["fargate-otel.injector.version"],
		ExportersSource:  attrs["fargate-otel.exporters.source"],
		BootstrapHash:    attrs["fargate-otel.bootstrap.config_hash"],
		ConfigHash:       attrs["fargate-otel.config_hash"],
	}
}

// setSource records where the agent's exporters come from and keeps the
// namespace source reading exactly the ConfigMaps in use. The namespace is
// always the token's.
func (c *conn) setSource(src desired.Source, srcErr error) {
	var key *sources.Key
	if srcErr == nil && src.ConfigMap != "" {
		key = &sources.Key{Namespace: c.caller.Namespace, Name: src.ConfigMap}
	}
	same := (key == nil && c.srcKey == nil) || (key != nil && c.srcKey != nil && *key == *c.srcKey && src.Key == c.srcData)
	if !same {
		if c.srcKey != nil {
			c.s.o.Namespaces.Release(*c.srcKey, c.srcData)
		}
		c.srcKey, c.srcData = key, src.Key
		if key != nil {
			c.s.o.Namespaces.Want(*key, src.Key)
		}
	}
	c.mu.Lock()
	c.source, c.sourceErr = src, ""
	if srcErr != nil {
		c.sourceErr = srcErr.Error() + "; nothing is sent"
	}
	c.mu.Unlock()
}

// refreshDesired recomputes what the agent should run and says whether a
// push is needed.
func (c *conn) refreshDesired() bool {
	c.mu.Lock()
	src, srcErr := c.source, c.sourceErr
	c.mu.Unlock()
	d := desired.Desired{Error: srcErr}
	switch {
	case c.kind == api.KindGateway:
		// Never sent settings: a gateway's config is the chart's.
		d = desired.Desired{}
	case srcErr == "":
		d = c.s.desiredFor(c.caller.Namespace, src)
	}
	c.s.reg.SetDesired(c.uid, d.Hex(), d.Error)
	c.mu.Lock()
	c.desired = d
	c.mu.Unlock()
	return c.needsSend()
}

func (c *conn) needsSend() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.desired.Body == nil || bytes.Equal(c.sent, c.desired.Hash) {
		return false
	}
	last, _ := c.s.reg.RemoteStatus(c.uid)
	// An agent that already acted on these settings (applied, or failed
	// them) is not sent them again.
	return last != c.desired.Hex()
}

// takeRemoteConfig returns the settings to send, if any, and marks them sent.
func (c *conn) takeRemoteConfig() *protobufs.AgentRemoteConfig {
	if !c.needsSend() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.desired
	c.sent = d.Hash
	c.s.metrics.configsSent.Inc()
	return &protobufs.AgentRemoteConfig{
		ConfigHash: d.Hash,
		Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			sidecarconfig.OverridesConfigName: {Body: d.Body, ContentType: sidecarconfig.OverridesContentType},
		}},
	}
}

// push sends the current settings to the agent, disconnecting it if it
// does not take them within SendTimeout (it reconnects and gets them then).
func (c *conn) push(ctx context.Context) {
	rc := c.takeRemoteConfig()
	if rc == nil || c.oc == nil {
		return
	}
	t := time.AfterFunc(c.s.o.SendTimeout, func() { _ = c.oc.Disconnect() })
	defer t.Stop()
	if err := c.oc.Send(ctx, &protobufs.ServerToAgent{InstanceUid: c.uidBytes, RemoteConfig: rc}); err != nil {
		c.mu.Lock()
		c.sent = nil
		c.mu.Unlock()
		c.s.log.V(1).Info("cannot send live settings; the agent gets them when it reconnects", "pod", c.caller.Namespace+"/"+c.caller.PodName, "error", err.Error())
	}
}

func uidString(b []byte) string {
	if len(b) == 16 {
		var u [16]byte
		copy(u[:], b)
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	return hex.EncodeToString(b)
}
