package injector

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// Uninject takes out of a copy of pod what Mutate put in, guided by the
// status annotation, so that the CLI can inject a template anew (with a
// command that became known since, or another configuration): the
// annotations Mutate writes, its init container, collector and follower, its volumes
// (all named fargate-otel-*: Mutate refuses pods that have such volumes) and
// their mounts, the wrapper in front of the commands, and the OTLP
// variables of the containers the status lists. A wrapped command becomes
// the command the wrapper ran, which is what Mutate wraps again, whether it
// came from the spec, the command annotation or the image.
//
// A container whose wrapper ran nothing before the spec's args (its image
// has neither ENTRYPOINT nor CMD) is left without a command, and the Images
// returned say so about its image, for Mutate to wrap it again.
//
// Mutate(Uninject(Mutate(p))) equals Mutate(p) (a test checks it): a part
// added to Mutate must be taken out here too. The webhook never calls it:
// a pod that carries the status annotation is left alone.
func Uninject(pod *corev1.Pod) (*corev1.Pod, Images, error) {
	raw, ok := pod.Annotations[annotations.Status]
	if !ok {
		return nil, nil, fmt.Errorf("not injected: there is no %s annotation", annotations.Status)
	}
	var status Status
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		return nil, nil, fmt.Errorf("the %s annotation does not read (%w): inject the original manifest instead", annotations.Status, err)
	}
	out := pod.DeepCopy()
	for _, k := range []string{annotations.Status, annotations.FargateSizeBefore, annotations.FargateSizeAfter} {
		delete(out.Annotations, k)
	}
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	ours := func(c corev1.Container) bool {
		return c.Name == InitContainerName || c.Name == CollectorContainerName || c.Name == FollowerContainerName
	}
	out.Spec.InitContainers = slices.DeleteFunc(out.Spec.InitContainers, ours)
	out.Spec.Containers = slices.DeleteFunc(out.Spec.Containers, ours)
	if len(out.Spec.InitContainers) == 0 {
		out.Spec.InitContainers = nil
	}
	out.Spec.Volumes = slices.DeleteFunc(out.Spec.Volumes, func(v corev1.Volume) bool {
		return strings.HasPrefix(v.Name, "fargate-otel-")
	})
	if len(out.Spec.Volumes) == 0 {
		out.Spec.Volumes = nil
	}
	// A command that came from the annotation goes back there: the spec
	// had none.
	opts, _ := annotations.Parse(out.Annotations)
	var images Images
	for _, list := range [][]corev1.Container{out.Spec.InitContainers, out.Spec.Containers} {
		for i := range list {
			c := &list[i]
			wrapped := len(c.Command) > 0 && c.Command[0] == TeePath
			c.Command = unwrap(c.Command)
			if wrapped && c.Command == nil {
				if images == nil {
					images = Images{}
				}
				images[c.Image] = ImageLookup{Config: &ImageConfig{}}
			}
			if c.Command != nil && slices.Contains(status.Containers, c.Name) {
				if cmd, ok := opts.Commands[c.Name]; (ok && slices.Equal(cmd, c.Command)) || (opts.Command != nil && slices.Equal(opts.Command, c.Command)) {
					c.Command = nil
				}
			}
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return strings.HasPrefix(m.Name, "fargate-otel-")
			})
			if len(c.VolumeMounts) == 0 {
				c.VolumeMounts = nil
			}
			if slices.Contains(status.OTLPEnv, c.Name) {
				c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return slices.Contains(OTLPEnvNames, e.Name) })
				if len(c.Env) == 0 {
					c.Env = nil
				}
			}
		}
	}
	return out, images, nil
}

// unwrap is the command the wrapper runs: what follows its "--".
func unwrap(cmd []string) []string {
	if len(cmd) == 0 || cmd[0] != TeePath {
		return cmd
	}
	i := slices.Index(cmd, "--")
	if i < 0 {
		return cmd
	}
	if rest := cmd[i+1:]; len(rest) > 0 {
		return slices.Clone(rest)
	}
	return nil
}
