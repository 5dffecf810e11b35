package injector

import (
	"sort"
	"strconv"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
	"github.com/fargate-otel/fargate-otel/logrotate"
)

// rateLimits turns the pod's log-rate-limit annotation into each wrapped
// container's budget: its own entry, else the one for every container.
// The budget is the wrapper's (lines over it leave the file only), so
// entries for containers that are not wrapped are reported and ignored:
// a container read through the api log source has no wrapper to hold it.
func (p *plan) rateLimits(wrapped, followed []string) map[string]annotations.RateLimit {
	want := p.opts.LogRateLimit
	if len(want) == 0 {
		return nil
	}
	if !p.signals.Logs {
		p.warnf("annotation %s has no effect: the pod's logs are disabled", annotations.LogRateLimit)
		return nil
	}
	isWrapped := map[string]bool{}
	for _, name := range wrapped {
		isWrapped[name] = true
	}
	isFollowed := map[string]bool{}
	for _, name := range followed {
		isFollowed[name] = true
	}
	var named []string
	for name := range want {
		if name != annotations.AllContainers {
			named = append(named, name)
		}
	}
	sort.Strings(named)
	for _, name := range named {
		switch {
		case isFollowed[name]:
			p.warnf("annotation %s: container %q is read from the kubelet (log source api), which has no log budget; its entry is ignored (the budget is the wrapper's: give the container a command, or log source wrap)", annotations.LogRateLimit, name)
		case !isWrapped[name]:
			p.warnf("annotation %s names container %q, which is not a wrapped container; its entry is ignored", annotations.LogRateLimit, name)
		}
	}
	out := map[string]annotations.RateLimit{}
	for _, name := range wrapped {
		r, ok := want[name]
		if !ok {
			r = want[annotations.AllContainers]
		}
		if r.Enabled() {
			out[name] = r
		}
	}
	return out
}

// rateLimitFlags are the wrapper's flags for a budget (see
// cmd/fargate-otel-tee: --rate-limit-*), in the units it reads.
func rateLimitFlags(r annotations.RateLimit) []string {
	var out []string
	add := func(flag, v string) { out = append(out, "--"+flag+"="+v) }
	if r.Lines > 0 {
		add("rate-limit-lines", strconv.FormatInt(r.Lines, 10))
		if r.LinesBurst > 0 {
			add("rate-limit-lines-burst", strconv.FormatInt(r.LinesBurst, 10))
		}
	}
	if r.Bytes > 0 {
		add("rate-limit-bytes", logrotate.FormatSize(r.Bytes))
		if r.BytesBurst > 0 {
			add("rate-limit-bytes-burst", logrotate.FormatSize(r.BytesBurst))
		}
	}
	return out
}
