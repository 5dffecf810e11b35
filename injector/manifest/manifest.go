// Package manifest runs the injection offline on Kubernetes manifests, the
// way `linkerd inject` does: a multi-document YAML stream in, the same
// stream out with the pod templates of Pods, Deployments, StatefulSets,
// DaemonSets, ReplicaSets, ReplicationControllers, Jobs and CronJobs (also
// inside a List) injected by injector.Mutate. Documents it does not change
// are written back byte for byte; in a changed document, comments, key
// order and style of the author's parts are kept.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector"
)

// Options configure Inject.
type Options struct {
	// Config is the injector's configuration. The CLI sets Scope to
	// ScopeAll: it injects what it is given.
	Config injector.Config
	// Resolve looks up the images of containers without a command; nil
	// leaves them unwrapped with a warning.
	Resolve func(pod *corev1.Pod, reqs []injector.ImageRequest) injector.Images
}

// Object is what happened to one workload of the stream.
type Object struct {
	// Document is the 1-based position of the YAML document in the stream.
	Document  int
	Kind      string
	Namespace string
	Name      string
	// Item is the index in a List, -1 outside one.
	Item int
	// Error says why the object could not be read (it is left as it was).
	Error string
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

// stream is a parsed YAML stream.
type stream struct {
	docs       []document
	nodes      []*yaml.Node // nil for blank documents
	configMaps map[string]map[string]string
}

func parse(input []byte) (*stream, error) {
	s := &stream{docs: split(input), configMaps: map[string]map[string]string{}}
	s.nodes = make([]*yaml.Node, len(s.docs))
	for i, d := range s.docs {
		if blank(d.text) {
			continue
		}
		var node yaml.Node
		if err := yaml.Unmarshal(d.text, &node); err != nil {
			return nil, fmt.Errorf("document %d is not valid YAML: %w", i+1, err)
		}
		if len(node.Content) == 0 || node.Content[0].Kind != yaml.MappingNode {
			continue
		}
		s.nodes[i] = &node
		if h, _, err := readHeader(node.Content[0]); err == nil && h.Kind == "ConfigMap" && h.APIVersion == "v1" {
			s.configMaps[h.Metadata.Namespace+"/"+h.Metadata.Name] = h.Data
		}
	}
	return s, nil
}

// objects calls f for every object of the stream, items of Lists
// included; f says whether it changed the node.
func (s *stream) objects(f func(node *yaml.Node, doc, item int) bool) error {
	for i, node := range s.nodes {
		if node == nil {
			continue
		}
		root := node.Content[0]
		changed := false
		if items := mapValue(root, "items"); items != nil && items.Kind == yaml.SequenceNode && strings.HasSuffix(kindOf(root), "List") {
			for k, item := range items.Content {
				if item.Kind == yaml.MappingNode && f(item, i+1, k) {
					changed = true
				}
			}
		} else {
			changed = f(root, i+1, -1)
		}
		if changed {
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			enc.SetIndent(2)
			enc.CompactSeqIndent()
			if err := enc.Encode(node); err != nil {
				return fmt.Errorf("document %d: write YAML: %w", i+1, err)
			}
			_ = enc.Close()
			s.docs[i].text = buf.Bytes()
		}
	}
	return nil
}

func kindOf(node *yaml.Node) string {
	if k := mapValue(node, "kind"); k != nil {
		return k.Value
	}
	return ""
}

func readHeader(node *yaml.Node) (header, []byte, error) {
	var h header
	text, err := yaml.Marshal(node)
	if err != nil {
		return h, nil, err
	}
	j, err := sigsyaml.YAMLToJSON(text)
	if err != nil {
		return h, nil, err
	}
	err = json.Unmarshal(j, &h)
	return h, j, err
}

// Inject injects every pod template of the stream. The error is for input
// that is not YAML at all; problems with one object are in its Object.
func Inject(input []byte, opts Options) ([]byte, []Object, error) {
	s, err := parse(input)
	if err != nil {
		return nil, nil, err
	}
	var objects []Object
	err = s.objects(func(node *yaml.Node, doc, item int) bool {
		w, ok := s.workload(node, doc, item)
		if !ok {
			return false
		}
		if w.obj.Error != "" {
			objects = append(objects, w.obj)
			return false
		}
		changed := w.inject(opts)
		objects = append(objects, w.obj)
		return changed
	})
	if err != nil {
		return nil, nil, err
	}
	return join(s.docs), objects, nil
}

// Pod is the pod of one workload of a stream, with the exporters ConfigMap
// it refers to when the stream holds it.
type Pod struct {
	Object
	Pod       *corev1.Pod
	Exporters *injector.ReferencedExporters
}

// Pods reads the pods of the workloads of a stream (for `render`).
func Pods(input []byte) ([]Pod, error) {
	s, err := parse(input)
	if err != nil {
		return nil, err
	}
	var pods []Pod
	err = s.objects(func(node *yaml.Node, doc, item int) bool {
		w, ok := s.workload(node, doc, item)
		if ok {
			pods = append(pods, Pod{Object: w.obj, Pod: w.pod, Exporters: w.exporters})
		}
		return false
	})
	return pods, err
}

// workload is one object with a pod template.
type workload struct {
	obj       Object
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
	w := &workload{obj: Object{Document: doc, Item: item, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}}
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
			w.tmplNode = mapValue(w.tmplNode, key)
		}
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

// inject mutates the workload's pod template node; it says whether it changed.
func (w *workload) inject(opts Options) bool {
	cfg := opts.Config
	cfg.ReferencedExporters = w.exporters
	var images injector.Images
	if opts.Resolve != nil {
		if reqs := injector.ImagesToResolve(w.pod, cfg); len(reqs) > 0 {
			images = opts.Resolve(w.pod, reqs)
		}
	}
	w.obj.Result = injector.Mutate(w.pod, cfg, images)
	if !w.obj.Injected {
		return false
	}
	out := corev1.PodTemplateSpec{ObjectMeta: w.obj.Pod.ObjectMeta, Spec: w.obj.Pod.Spec}
	out.Namespace = w.tmpl.Namespace
	before, err1 := generic(w.tmpl)
	after, err2 := generic(out)
	if err1 != nil || err2 != nil {
		w.obj.Result = injector.Result{Pod: w.pod, Skip: injector.SkipInternalError}
		w.obj.Error = fmt.Sprintf("write the pod template: %v %v", err1, err2)
		return false
	}
	merge(w.tmplNode, before, after)
	return true
}

// UnwrappedForLackOfCommand lists the containers left unwrapped because
// their command is unknown, for the CLI's hint about --resolve.
func UnwrappedForLackOfCommand(o Object) []string {
	if o.Status == nil {
		return nil
	}
	var out []string
	for _, w := range o.Warnings {
		for _, name := range o.Status.Unwrapped {
			if strings.Contains(w, "container "+name+" is not captured: it has no command") {
				out = append(out, name)
			}
		}
	}
	return out
}
