package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fargate-otel/fargate-otel/injector/manifest"
)

// parseCommand reads one --command: [KIND/NAME:]CONTAINER=JSON, the JSON an
// array of strings, as a pod spec's command.
func parseCommand(flag string) (manifest.Command, error) {
	target, argv, ok := strings.Cut(flag, "=")
	if !ok {
		return manifest.Command{}, fmt.Errorf(`--command %q: want CONTAINER=JSON, e.g. --command 'app=["/app/server","--port=8080"]'`, flag)
	}
	return newCommand(target, []byte(argv), "--command "+flag)
}

func newCommand(target string, argv []byte, what string) (manifest.Command, error) {
	c := manifest.Command{Container: strings.TrimSpace(target)}
	if w, name, ok := strings.Cut(c.Container, ":"); ok {
		c.Workload, c.Container = strings.ToLower(strings.TrimSpace(w)), strings.TrimSpace(name)
		if !strings.Contains(c.Workload, "/") {
			return c, fmt.Errorf("%s: the workload is KIND/NAME as the report names it, e.g. deployment/web:app", what)
		}
	}
	if c.Container == "" {
		return c, fmt.Errorf("%s: no container name before =", what)
	}
	if err := json.Unmarshal(argv, &c.Argv); err != nil || len(c.Argv) == 0 {
		return c, fmt.Errorf(`%s: the command is a JSON array of strings, e.g. ["/app/server","--port=8080"]`, what)
	}
	return c, nil
}

// readCommandsFile reads --commands FILE: YAML or JSON, a mapping of
// [KIND/NAME:]CONTAINER to the command as a list of strings.
func readCommandsFile(path string) ([]manifest.Command, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--commands: %w", err)
	}
	var m map[string][]string
	if err := sigsyaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf(`--commands %s: want a mapping of CONTAINER (or deployment/web:CONTAINER) to a list of strings, e.g. app: ["/app/server", "--port=8080"]: %w`, path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []manifest.Command
	for _, k := range keys {
		argv, _ := json.Marshal(m[k])
		c, err := newCommand(k, argv, fmt.Sprintf("--commands %s: %s", path, k))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
