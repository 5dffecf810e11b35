// Package redact hides secrets in a collector config before the fleet
// server keeps or shows it. The agent already redacts what it reports
// (docs/fleet-protocol.md); the server does it again, so that an agent of
// another version, or one that gets it wrong, cannot put a secret on the
// page.
package redact

import (
	"bytes"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mask replaces a secret value.
const Mask = "[redacted]"

// secretKey matches keys whose values are secrets.
var secretKey = regexp.MustCompile(`(?i)(secret|token|password|passwd|api[_-]?key|apikey|authorization|credential|private[_-]?key|bearer|auth)`)

// envRef is a whole value that only refers to an env var: no secret in it.
var envRef = regexp.MustCompile(`^\$\{(env:)?[A-Za-z_][A-Za-z0-9_]*\}$`)

// YAML returns the config with every value under a secret-like key, and
// every value of a headers map, replaced by Mask unless it is only an
// ${env:VAR} reference. Input that is not YAML is replaced whole: it cannot
// be shown safely.
func YAML(in []byte) []byte {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return []byte("# the effective config is not YAML; the fleet server does not show it\n")
	}
	walk(&doc, false)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return []byte("# the effective config cannot be shown\n")
	}
	_ = enc.Close()
	return buf.Bytes()
}

// walk masks scalars below n; secret says that n sits under a secret key.
func walk(n *yaml.Node, secret bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			walk(c, secret)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			under := secret || secretKey.MatchString(k.Value) || strings.EqualFold(k.Value, "headers")
			walk(v, under)
		}
	case yaml.ScalarNode:
		if secret && n.Value != Mask && n.Value != "" && !envRef.MatchString(n.Value) {
			n.Value, n.Tag, n.Style = Mask, "!!str", 0
		}
	case yaml.AliasNode:
		// Aliases point at nodes walked where they are defined.
	}
}
