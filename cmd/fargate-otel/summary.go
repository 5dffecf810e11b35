package main

import (
	"fmt"

	"github.com/fargate-otel/fargate-otel/injector"
	"github.com/fargate-otel/fargate-otel/injector/manifest"
)

// summary counts pod templates and containers.
type summary struct {
	templates, injected, already, notInjected, failed    int
	containers, wrapped, otherwise, notCaptured, leftOut int
	notCapturedNames                                     []string
}

// summarize: a container is wrapped, captured by another log source, not
// captured (its logs are wanted but no source applies), or left out (not
// selected, logs off, or the pod opted out).
func summarize(objects []manifest.Object) summary {
	var s summary
	for _, obj := range objects {
		s.templates++
		s.containers += len(obj.Containers)
		var wrapped, missing []string
		switch {
		case obj.Error != "":
			s.failed++
			s.notInjected++
			missing = obj.Containers
		case obj.Injected:
			s.injected++
		case obj.Skip == injector.SkipAlreadyInjected:
			s.already++
		default:
			s.notInjected++
			switch obj.Skip {
			case injector.SkipOptedOut, injector.SkipNoSignals, injector.SkipNotFargate:
			default:
				if obj.Pod != nil {
					for _, c := range obj.Pod.Spec.Containers {
						missing = append(missing, c.Name)
					}
				}
			}
		}
		if st := obj.Status; st != nil && obj.Error == "" {
			wrapped, missing = st.Containers, st.NotCaptured()
			s.otherwise += len(st.Unwrapped) - len(missing)
		}
		s.wrapped += len(wrapped)
		s.notCaptured += len(missing)
		for _, name := range missing {
			s.notCapturedNames = append(s.notCapturedNames, obj.String()+":"+name)
		}
	}
	s.leftOut = s.containers - s.wrapped - s.otherwise - s.notCaptured
	return s
}

func (s summary) String() string {
	out := fmt.Sprintf("summary: %d pod templates (%d injected, %d already injected, %d not injected); %d containers: %d wrapped",
		s.templates, s.injected, s.already, s.notInjected, s.containers, s.wrapped)
	if s.otherwise > 0 {
		out += fmt.Sprintf(", %d captured by another log source", s.otherwise)
	}
	return out + fmt.Sprintf(", %d not captured, %d left out", s.notCaptured, s.leftOut)
}
