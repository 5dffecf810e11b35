package manifest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// ownMetadataWarnings: fargate-otel.io/ annotations and labels on a
// workload's own metadata (not its pod template's), where nothing reads them.
func ownMetadataWarnings(root *yaml.Node, kind string) []string {
	if kind == "Pod" {
		return nil
	}
	j, err := nodeJSON(root)
	if err != nil {
		return nil
	}
	var obj struct {
		Metadata meta `json:"metadata"`
		Spec     struct {
			Template    struct{ Metadata meta } `json:"template"`
			JobTemplate struct {
				Metadata meta `json:"metadata"`
				Spec     struct {
					Template struct{ Metadata meta } `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if json.Unmarshal(j, &obj) != nil {
		return nil
	}
	tmpl, where := obj.Spec.Template.Metadata, "spec.template.metadata"
	if kind == "CronJob" {
		tmpl, where = obj.Spec.JobTemplate.Spec.Template.Metadata, "spec.jobTemplate.spec.template.metadata"
	}
	var out []string
	check := func(m meta, whose string) {
		for _, f := range []struct {
			what string
			own  map[string]string
			pod  map[string]string
		}{{"annotation", m.Annotations, tmpl.Annotations}, {"label", m.Labels, tmpl.Labels}} {
			for _, k := range sortedStrings(f.own) {
				if !strings.HasPrefix(k, annotations.Prefix) {
					continue
				}
				if v, ok := f.pod[k]; ok && v == f.own[k] {
					continue // on the template as well
				}
				out = append(out, fmt.Sprintf("fargate-otel: %s %s is on the %s's own metadata, where nothing reads it: the injector reads the pod's, so move it to %s.%ss",
					f.what, k, whose, where, f.what))
			}
		}
	}
	check(obj.Metadata, kind)
	if kind == "CronJob" {
		check(obj.Spec.JobTemplate.Metadata, "CronJob's jobTemplate")
	}
	return out
}

type meta struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func sortedStrings(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
