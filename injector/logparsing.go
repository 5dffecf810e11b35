package injector

import (
	"sort"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// logParsing turns the pod's multiline and log-parser annotations into the
// collector's LogParsing: the value for every container (*) as the
// default, and an entry for each captured container named, with the
// default for what its annotations leave out. Entries equal to the default
// are left out, so that a pod-wide value needs no router. Names that are
// not captured containers are reported and ignored.
func (p *plan) logParsing() sidecarconfig.LogParsing {
	ml, lp := p.opts.Multiline, p.opts.LogParser
	if len(ml) == 0 && len(lp) == 0 {
		return sidecarconfig.LogParsing{}
	}
	if !p.signals.Logs {
		if len(ml) > 0 {
			p.warnf("annotation %s has no effect: the pod's logs are disabled", annotations.Multiline)
		}
		if len(lp) > 0 {
			p.warnf("annotation %s has no effect: the pod's logs are disabled", annotations.LogParser)
		}
		return sidecarconfig.LogParsing{}
	}
	out := sidecarconfig.LogParsing{Default: sidecarconfig.Parsing{
		Multiline: ml[annotations.AllContainers],
		Parser:    lp[annotations.AllContainers],
	}}
	captured := map[string]bool{}
	for _, s := range p.selected {
		captured[s.name] = true
	}
	var names []string
	seen := map[string]bool{annotations.AllContainers: true}
	for _, m := range []map[string]string{ml, lp} {
		for name := range m {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if !captured[name] {
			key := annotations.Multiline
			if _, ok := ml[name]; !ok {
				key = annotations.LogParser
			}
			p.warnf("annotation %s names container %q, which is not a captured container; its entry is ignored", key, name)
			continue
		}
		c := out.Default
		if v, ok := ml[name]; ok {
			c.Multiline = v
		}
		if v, ok := lp[name]; ok {
			c.Parser = v
		}
		if c == out.Default {
			continue
		}
		if out.Containers == nil {
			out.Containers = map[string]sidecarconfig.Parsing{}
		}
		out.Containers[name] = c
	}
	return out
}
