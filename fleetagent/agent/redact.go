package agent

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted replaces every secret in a reported config.
const Redacted = "[redacted]"

// A value under a key named like a secret is reported only when it is a
// reference to an env var (the value then lives in a Kubernetes Secret the
// pod maps into its env, and the config shows only the name); any literal
// there, a header's value typed into an exporters ConfigMap for instance,
// is replaced. Outside such keys, only a URL's password is.

// secretKeyParts are the parts of a key name that make its value secret.
var secretKeyParts = []string{
	"password", "passwd", "secret", "token", "api_key", "apikey", "api-key",
	"authorization", "credential", "private", "cookie", "bearer", "signature",
}

// secretKeys are key names whose whole value is secret.
var secretKeys = []string{"headers", "key_pem"}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	if slices.Contains(secretKeys, k) {
		return true
	}
	for _, p := range secretKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// envRef is a whole value that is a reference to an env var.
var envRef = regexp.MustCompile(`^\$\{(env:)?[A-Za-z_][A-Za-z0-9_]*\}$`)

// Redact returns the YAML config with its secrets replaced, and the literal
// secrets it replaced (Scrub takes them out of error messages).
func Redact(config []byte) ([]byte, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return nil, nil, fmt.Errorf("redact the config: %w", err)
	}
	var secrets []string
	walk(&doc, false, &secrets)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("redact the config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("redact the config: %w", err)
	}
	return buf.Bytes(), secrets, nil
}

func walk(n *yaml.Node, secret bool, secrets *[]string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			walk(c, secret, secrets)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			walk(v, secret || secretKey(k.Value), secrets)
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			walk(n.Alias, secret, secrets)
		}
	case yaml.ScalarNode:
		redactScalar(n, secret, secrets)
	}
}

func redactScalar(n *yaml.Node, secret bool, secrets *[]string) {
	v := n.Value
	switch {
	case v == "" || n.Tag == "!!null" || n.Tag == "!!bool":
		return
	case secret && envRef.MatchString(v):
		return
	case secret:
		*secrets = append(*secrets, v)
		setRedacted(n)
	default:
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && !envRef.MatchString(p) {
				*secrets = append(*secrets, p)
				u.User = url.UserPassword(u.User.Username(), "REDACTED")
				n.Value = strings.Replace(u.String(), "REDACTED", Redacted, 1)
			}
		}
	}
}

func setRedacted(n *yaml.Node) {
	n.Value = Redacted
	n.Tag = "!!str"
	n.Style = 0
}

// Scrub replaces every secret in msg (an error the collector or the
// settings gave, which may quote a value).
func Scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, Redacted)
		}
	}
	return msg
}
