package redact

import (
	"strings"
	"testing"
)

func TestYAML(t *testing.T) {
	in := `exporters:
  otlp_http/x:
    endpoint: https://x.example
    headers:
      x-team: shop
      authorization: ${env:AUTH}
    api_key: abc123
    password: "[redacted]"
    tls:
      ca_file: /etc/ca.crt
extensions:
  bearertokenauth:
    token: s3cr3t
`
	out := string(YAML([]byte(in)))
	for _, secret := range []string{"abc123", "s3cr3t", "x-team: shop"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q kept:\n%s", secret, out)
		}
	}
	for _, kept := range []string{"https://x.example", "${env:AUTH}", "/etc/ca.crt"} {
		if !strings.Contains(out, kept) {
			t.Errorf("%q lost:\n%s", kept, out)
		}
	}
	if out := string(YAML([]byte("a: [unclosed"))); strings.Contains(out, "unclosed") {
		t.Errorf("not YAML, shown: %s", out)
	}
}
