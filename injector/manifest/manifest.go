// Package manifest runs the injection offline on Kubernetes manifests, the
// way `linkerd inject` does: YAML or JSON in, the same out, with the pod
// templates of Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
// ReplicationControllers, Jobs and CronJobs (also inside a List) injected by
// injector.Mutate.
//
// Documents it does not change are written back byte for byte. In a YAML
// document it changes, the text is edited in place: the injected lines are
// inserted in the document's own indentation and sequence style, and
// everything else (comments, quoting, block scalars, key order) stays as it
// was, so that a GitOps diff shows only the injection. A JSON document is
// written back as JSON, in its own indentation and key order.
package manifest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// Format is how a stream is written.
type Format string

const (
	// FormatSame writes JSON when every input is JSON, else YAML.
	FormatSame Format = ""
	FormatYAML Format = "yaml"
	FormatJSON Format = "json"
)

// Options configure Inject.
type Options struct {
	// Config is the injector's configuration. The CLI sets Scope to
	// ScopeAll: it injects what it is given.
	Config injector.Config
	// Resolve looks up the images of containers without a command; nil
	// leaves them unwrapped with a warning.
	Resolve func(pod *corev1.Pod, reqs []injector.ImageRequest) injector.Images
	// Commands give containers the command their spec lacks (the CLI's
	// --command), as if it were in the spec: they come before the
	// fargate-otel.io/command annotation and the image's entrypoint.
	Commands []Command
	// Reinject injects anew the templates that already carry the injection:
	// what it added is taken out (injector.Uninject), then the current
	// configuration and commands are applied.
	Reinject bool
	// Output is the format of the output.
	Output Format
}

// Command is the command of the container Container of every pod template,
// or of the one of Workload ("deployment/web", as the report names it).
type Command struct {
	Workload  string
	Container string
	Argv      []string
}

// Object is what happened to one workload of the stream.
type Object struct {
	// Document is the 1-based position of the document in the stream.
	Document  int
	Kind      string
	Namespace string
	Name      string
	// Item is the index in a List, -1 outside one.
	Item int
	// Error says why the object could not be read (it is left as it was).
	Error string
	// Containers are the template's own containers, init containers first
	// (without the injector's).
	Containers []string
	// Commanded are the containers whose command came from Options.Commands.
	Commanded []string
	// Reinjected: the template carried an injection, taken out and made anew.
	Reinjected bool
	// CommandNowKnown are containers an earlier injection left unwrapped
	// for which a command is known now (spec, annotation or Commands):
	// injecting anew (Options.Reinject) would wrap them.
	CommandNowKnown []string
	// Rewritten, when not empty, says why the document that holds the
	// object was written anew by the YAML encoder instead of edited in
	// place: its comments, quoting and layout are then the encoder's, and a
	// diff shows more than the injection. Every object of a List has it.
	Rewritten string
	// injector.Result: for a template injected earlier (Skip
	// SkipAlreadyInjected), Status is what its status annotation says.
	injector.Result
}

// String names the object like kubectl: kind/name.
func (o Object) String() string {
	name := o.Name
	if name == "" {
		name = fmt.Sprintf("(document %d)", o.Document)
	}
	return strings.ToLower(o.Kind) + "/" + name
}

// templatePath is where a kind keeps its pod template: nil for a Pod (the
// object itself holds metadata and spec), false for kinds without one.
func templatePath(apiVersion, kind string) ([]string, bool) {
	group, _, hasGroup := strings.Cut(apiVersion, "/")
	if !hasGroup {
		group = ""
	}
	switch {
	case group == "" && kind == "Pod":
		return nil, true
	case group == "" && kind == "ReplicationController":
		return []string{"spec", "template"}, true
	case group == "apps" && (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" || kind == "ReplicaSet"):
		return []string{"spec", "template"}, true
	case group == "batch" && kind == "Job":
		return []string{"spec", "template"}, true
	case group == "batch" && kind == "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template"}, true
	}
	return nil, false
}

// header is what every object says about itself.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

func readHeader(node *yaml.Node) (header, []byte, error) {
	var h header
	j, err := nodeJSON(node)
	if err != nil {
		return h, nil, err
	}
	err = json.Unmarshal(j, &h)
	return h, j, err
}

// nodeJSON is a node as Kubernetes reads it.
func nodeJSON(node *yaml.Node) ([]byte, error) {
	text, err := yaml.Marshal(node)
	if err != nil {
		return nil, err
	}
	return sigsyaml.YAMLToJSON(text)
}

func kindOf(node *yaml.Node) string {
	if k := mapValue(node, "kind"); k != nil {
		return k.Value
	}
	return ""
}

// Inject injects every pod template of a stream. The error is for input
// that is not YAML or JSON at all; problems with one object are in its
// Object.
func Inject(input []byte, opts Options) ([]byte, []Object, error) {
	return InjectFiles([][]byte{input}, opts)
}

// InjectFiles injects several inputs as one stream (a workload finds its
// exporters ConfigMap in any of them), each read as YAML or JSON on its own.
func InjectFiles(inputs [][]byte, opts Options) ([]byte, []Object, error) {
	s, err := parse(inputs)
	if err != nil {
		return nil, nil, err
	}
	var objects []Object
	err = s.objects(func(d *document, node *yaml.Node, doc, item int) {
		w, ok := s.workload(node, doc, item)
		if !ok {
			return
		}
		if w.obj.Error == "" {
			w.inject(opts, &d.merger)
		}
		objects = append(objects, w.obj)
	})
	if err != nil {
		return nil, nil, err
	}
	out, err := s.write(opts.Output)
	if err != nil {
		return nil, nil, err
	}
	for i := range objects {
		objects[i].Rewritten = s.docs[objects[i].Document-1].rewritten
	}
	return out, objects, nil
}

// DocumentName names the document that holds o, for a report: its index
// and the object's kind/name, or "a List" for an item of one.
func DocumentName(o Object) string {
	switch {
	case o.Item >= 0:
		return fmt.Sprintf("document %d (a List)", o.Document)
	case o.Name == "":
		return fmt.Sprintf("document %d (a %s without a name)", o.Document, o.Kind)
	}
	return fmt.Sprintf("document %d (%s)", o.Document, o)
}

// Pod is the pod of one workload of a stream, with the exporters ConfigMap
// it refers to when the stream holds it.
type Pod struct {
	Object
	Pod       *corev1.Pod
	Exporters *injector.ReferencedExporters
}

// Pods reads the pods of the workloads of a stream (for `render`).
func Pods(inputs ...[]byte) ([]Pod, error) {
	s, err := parse(inputs)
	if err != nil {
		return nil, err
	}
	var pods []Pod
	err = s.objects(func(_ *document, node *yaml.Node, doc, item int) {
		if w, ok := s.workload(node, doc, item); ok {
			pods = append(pods, Pod{Object: w.obj, Pod: w.pod, Exporters: w.exporters})
		}
	})
	return pods, err
}

// workload is one object with a pod template.
type workload struct {
	obj       Object
	root      *yaml.Node
	tmplNode  *yaml.Node
	tmpl      corev1.PodTemplateSpec
	pod       *corev1.Pod
	exporters *injector.ReferencedExporters
}

// workload reads an object's pod template; ok is false for kinds without
// one. A template that cannot be read gives a workload with obj.Error.
func (s *stream) workload(node *yaml.Node, doc, item int) (*workload, bool) {
	h, j, err := readHeader(node)
	if err != nil {
		return nil, false
	}
	path, ok := templatePath(h.APIVersion, h.Kind)
	if !ok {
		return nil, false
	}
	w := &workload{root: node, obj: Object{Document: doc, Item: item, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}}
	fail := func(format string, args ...any) (*workload, bool) {
		w.obj.Error = fmt.Sprintf(format, args...)
		w.obj.Skip = injector.SkipInvalid
		return w, true
	}
	var tmplJSON any
	if err := json.Unmarshal(j, &tmplJSON); err != nil {
		return fail("%v", err)
	}
	w.tmplNode = node
	for _, key := range path {
		m, _ := tmplJSON.(map[string]any)
		tmplJSON = m[key]
		if w.tmplNode != nil {
			w.tmplNode = mapValue(resolveAlias(w.tmplNode), key)
		}
	}
	if w.tmplNode != nil {
		w.tmplNode = resolveAlias(w.tmplNode)
	}
	if tmplJSON == nil || w.tmplNode == nil || w.tmplNode.Kind != yaml.MappingNode {
		return fail("no pod template at %s", strings.Join(path, "."))
	}
	raw, _ := json.Marshal(tmplJSON)
	if err := json.Unmarshal(raw, &w.tmpl); err != nil {
		return fail("the pod template does not read as a pod: %v", err)
	}
	w.pod = &corev1.Pod{ObjectMeta: *w.tmpl.ObjectMeta.DeepCopy(), Spec: *w.tmpl.Spec.DeepCopy()}
	if w.pod.Namespace == "" {
		w.pod.Namespace = h.Metadata.Namespace
	}
	for _, list := range [][]corev1.Container{w.pod.Spec.InitContainers, w.pod.Spec.Containers} {
		for _, c := range list {
			if c.Name != injector.InitContainerName && c.Name != injector.CollectorContainerName && c.Name != injector.FollowerContainerName {
				w.obj.Containers = append(w.obj.Containers, c.Name)
			}
		}
	}
	if ref, ok := injector.ExportersConfigMap(w.pod); ok {
		if data, found := s.configMaps[w.pod.Namespace+"/"+ref.Name]; found {
			w.exporters = &injector.ReferencedExporters{Ref: ref, Data: data[ref.Key]}
			if _, hasKey := data[ref.Key]; !hasKey {
				w.exporters.Err = fmt.Errorf("ConfigMap %s in this input has no key %s", ref.Name, ref.Key)
			}
		}
	}
	return w, true
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// inject mutates the workload's pod template node through m.
func (w *workload) inject(opts Options, m *merger) {
	cfg := opts.Config
	cfg.ReferencedExporters = w.exporters
	extra := ownMetadataWarnings(w.root, w.obj.Kind)
	defer func() { w.obj.Warnings = append(extra, w.obj.Warnings...) }()

	pod := w.pod
	var known injector.Images
	_, injected := pod.Annotations[annotations.Status]
	if injected && opts.Reinject {
		u, imgs, err := injector.Uninject(pod)
		if err != nil {
			w.obj.Skip = injector.SkipAlreadyInjected
			extra = append(extra, "fargate-otel: not injected anew: "+err.Error())
			return
		}
		pod, known = u, imgs
		w.obj.Reinjected = true
	}
	given, warns := w.applyCommands(pod, opts.Commands)
	extra = append(extra, warns...)
	images := known
	if opts.Resolve != nil {
		if reqs := injector.ImagesToResolve(pod, cfg); len(reqs) > 0 {
			looked := opts.Resolve(pod, reqs)
			images = injector.Images{}
			for k, v := range known {
				images[k] = v
			}
			for k, v := range looked {
				images[k] = v
			}
		}
	}
	res := injector.Mutate(pod, cfg, images)
	w.obj.Result = res
	if !res.Injected {
		if res.Skip == injector.SkipAlreadyInjected {
			w.alreadyInjected(given)
		}
		if !w.obj.Reinjected {
			return
		}
		res.Pod = pod // the injection taken out, nothing new
	}
	// A container given a command but left unwrapped keeps its own spec.
	for _, name := range given {
		if res.Status == nil || !contains(res.Status.Containers, name) {
			restoreCommand(res.Pod, name)
		}
	}
	out := corev1.PodTemplateSpec{ObjectMeta: res.Pod.ObjectMeta, Spec: res.Pod.Spec}
	out.Namespace = w.tmpl.Namespace
	before, err1 := generic(w.tmpl)
	after, err2 := generic(out)
	if err1 != nil || err2 != nil {
		w.obj.Result = injector.Result{Pod: w.pod, Skip: injector.SkipInternalError}
		w.obj.Error = fmt.Sprintf("write the pod template: %v %v", err1, err2)
		return
	}
	m.remove = w.obj.Reinjected
	m.merge(w.tmplNode, nil, before, after, 0)
	m.remove = false
	if w.obj.Reinjected {
		w.obj.Injected = true
	}
}

// UnwrappedForLackOfCommand lists the containers left unwrapped because
// their command is unknown, for the CLI's hints: not captured, or read
// from the kubelet (log source api), where wrapping keeps stdout and
// stderr apart.
func UnwrappedForLackOfCommand(o Object) []string {
	if o.Status == nil {
		return nil
	}
	var out []string
	for _, w := range o.Warnings {
		for _, name := range o.Status.Unwrapped {
			if strings.Contains(w, "container "+name+" is not captured: it has no command") ||
				strings.Contains(w, "container "+name+" is not wrapped: it has no command") {
				out = append(out, name)
			}
		}
	}
	return out
}

// sameJSON compares two JSON texts as values.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
