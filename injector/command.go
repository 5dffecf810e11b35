package injector

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// ImagesToResolve lists the containers whose command must be read from
// their image: captured, logs enabled, no command in the spec and none in
// the fargate-otel.io/command annotation. Nil when the pod will not be
// injected. It never panics.
func ImagesToResolve(pod *corev1.Pod, cfg Config) (reqs []ImageRequest) {
	if pod == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			reqs = nil
		}
	}()
	p, skip, _ := newPlan(pod, cfg)
	if skip != "" || !p.signals.Logs {
		return nil
	}
	for _, s := range p.selected {
		c, _ := findContainer(pod, s.name)
		if p.wantedLogSource(s.name) == annotations.LogSourceAPI && p.apiUnavailable() == "" {
			continue // followed whatever its command: no look-up
		}
		if len(c.Command) == 0 && s.command == nil {
			reqs = append(reqs, ImageRequest{Container: c.Name, Image: c.Image})
		}
	}
	return reqs
}

// argv is what the wrapper runs after "--". The kubelet appends the spec's
// args to the container's command, so they are never moved or removed.
type argv struct {
	words  []string
	source string // "spec", "annotation" or "image <digest>"
}

// originalCommand resolves, with Kubernetes semantics, what the container
// would run without the injector, minus the spec's args (which stay where
// they are and are appended by the kubelet). ok is false, with a warning
// saying why and how to fix it, when it cannot be known.
func originalCommand(c *corev1.Container, annotated []string, images Images) (argv, string) {
	if len(c.Command) > 0 {
		return argv{words: c.Command, source: "spec"}, ""
	}
	if annotated != nil {
		return argv{words: annotated, source: "annotation"}, ""
	}
	fix := fmt.Sprintf("set command in the pod spec or the annotation %s", annotations.Command)
	lookup, ok := images[c.Image]
	if !ok {
		return argv{}, fmt.Sprintf("container %s is not captured: it has no command and the entrypoint of image %s was not looked up; %s",
			c.Name, c.Image, fix)
	}
	if lookup.Err != nil || lookup.Config == nil {
		reason := "no image config"
		if lookup.Err != nil {
			reason = lookup.Err.Error()
		}
		return argv{}, fmt.Sprintf("container %s is not captured: reading the entrypoint of image %s failed (%s); %s",
			c.Name, c.Image, reason, fix)
	}
	// Kubernetes: no command -> ENTRYPOINT + (spec args, else CMD). The
	// image's words reach the kubelet through the spec now, where $(VAR)
	// would be expanded: escape "$" so they stay literal.
	words := escapeExpansion(lookup.Config.Entrypoint)
	if len(c.Args) == 0 {
		words = append(words, escapeExpansion(lookup.Config.Cmd)...)
	}
	if len(words) == 0 && len(c.Args) == 0 {
		return argv{}, fmt.Sprintf("container %s is not captured: image %s has neither ENTRYPOINT nor CMD; %s", c.Name, c.Image, fix)
	}
	src := "image"
	if lookup.Config.Digest != "" {
		src += " " + lookup.Config.Digest
	}
	return argv{words: words, source: src}, ""
}

// escapeExpansion doubles every "$": the kubelet turns "$$" back into "$"
// and never expands it as $(VAR).
func escapeExpansion(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strings.ReplaceAll(w, "$", "$$")
	}
	return out
}

// teeFlags are the wrapper's flags for one container (names fixed by the
// wrapper: see cmd/fargate-otel-tee).
type teeFlags struct {
	maxSize    string
	maxBackups int
	budget     string
	format     string
}

// wrap returns the container's new command: the wrapper, its flags, "--"
// and the original command.
func wrap(name string, f teeFlags, rate annotations.RateLimit, original []string) []string {
	cmd := []string{
		TeePath,
		"--podinfo-dir=" + PodInfoDir,
		"--container=" + name,
		"--max-size=" + f.maxSize,
		fmt.Sprintf("--max-backups=%d", f.maxBackups),
		"--budget=" + f.budget,
	}
	if f.format != "" && f.format != "cri" {
		cmd = append(cmd, "--format="+f.format)
	}
	cmd = append(cmd, rateLimitFlags(rate)...)
	cmd = append(cmd, "--")
	return append(cmd, original...)
}
