package manifest

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/annotations"
)

// applyCommands sets the spec command of containers lacking one from
// cmds; it returns the containers it gave a command.
func (w *workload) applyCommands(pod *corev1.Pod, cmds []Command) (given, warns []string) {
	if len(cmds) == 0 {
		return nil, nil
	}
	self := strings.ToLower(w.obj.Kind) + "/" + w.obj.Name
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			var pick *Command
			for k := range cmds {
				cmd := &cmds[k]
				if cmd.Container != c.Name || (cmd.Workload != "" && !strings.EqualFold(cmd.Workload, self)) {
					continue
				}
				if pick == nil || (pick.Workload == "" && cmd.Workload != "") {
					pick = cmd
				}
			}
			if pick == nil {
				continue
			}
			if len(c.Command) > 0 {
				if pick.Workload != "" {
					warns = append(warns, fmt.Sprintf("fargate-otel: --command %s/%s is not used: the container has a command in its spec", pick.Workload, c.Name))
				}
				continue
			}
			c.Command = append([]string(nil), pick.Argv...)
			given = append(given, c.Name)
			w.obj.Commanded = append(w.obj.Commanded, c.Name)
		}
	}
	return given, warns
}

// alreadyInjected records, for a template injected earlier, its status and
// the unwrapped containers whose command is known now.
func (w *workload) alreadyInjected(given []string) {
	var st injector.Status
	if err := json.Unmarshal([]byte(w.pod.Annotations[annotations.Status]), &st); err != nil {
		return
	}
	w.obj.Status = &st
	opts, _ := annotations.Parse(w.pod.Annotations)
	for _, name := range st.NotCaptured() {
		known := contains(given, name) || opts.Commands[name] != nil || (opts.Command != nil && len(st.NotCaptured()) == 1)
		for _, c := range w.pod.Spec.Containers {
			if c.Name == name && len(c.Command) > 0 {
				known = true
			}
		}
		if known {
			w.obj.CommandNowKnown = append(w.obj.CommandNowKnown, name)
		}
	}
}

func restoreCommand(pod *corev1.Pod, name string) {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name && (len(list[i].Command) == 0 || list[i].Command[0] != injector.TeePath) {
				list[i].Command = nil
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
