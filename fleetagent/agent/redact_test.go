package agent

import (
	"slices"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tt := range []struct {
		name, in  string
		want      []string // in the output
		gone      []string // not in the output
		secrets   []string
		unchanged bool
	}{
		{
			name: "headers: a reference stays, a literal goes",
			in: `exporters:
  otlp_http/vendor:
    endpoint: https://otlp.example.com
    headers:
      api-key: ${env:VENDOR_API_KEY}
      x-team: s3cr3t-literal
      x-old: ${VENDOR_TOKEN}
`,
			want:    []string{"api-key: ${env:VENDOR_API_KEY}", "x-team: '[redacted]'", "x-old: ${VENDOR_TOKEN}", "endpoint: https://otlp.example.com"},
			gone:    []string{"s3cr3t-literal"},
			secrets: []string{"s3cr3t-literal"},
		},
		{
			name: "keys named like secrets, at any depth and in lists",
			in: `extensions:
  basicauth:
    client_auth:
      username: me
      password: hunter22
  bearertokenauth:
    token: abcdef123
    tokens: [one1, "${env:TWO}"]
  oauth2client:
    client_secret: xyz987
exporters:
  x:
    tls:
      key_pem: "-----BEGIN PRIVATE KEY-----"
      key_file: /etc/tls/key.pem
`,
			want:    []string{"username: me", "password: '[redacted]'", "token: '[redacted]'", `tokens: ['[redacted]', "${env:TWO}"]`, "client_secret: '[redacted]'", "key_pem: '[redacted]'", "key_file: /etc/tls/key.pem"},
			gone:    []string{"hunter22", "abcdef123", "one1", "xyz987", "BEGIN PRIVATE"},
			secrets: []string{"hunter22", "abcdef123", "one1", "xyz987", "-----BEGIN PRIVATE KEY-----"},
		},
		{
			name:    "a password in a URL",
			in:      "exporters:\n  x:\n    endpoint: https://user:pa55word@collector.example.com:4318/v1\n",
			want:    []string{"https://user:[redacted]@collector.example.com:4318/v1"},
			gone:    []string{"pa55word"},
			secrets: []string{"pa55word"},
		},
		{
			name: "the product's own config has nothing to hide",
			in: `processors:
  resource:
    attributes:
      - key: k8s.pod.name
        value: ${env:POD_NAME}
        action: insert
receivers:
  kubelet_stats:
    auth_type: serviceAccount
    insecure_skip_verify: false
`,
			unchanged: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, secrets, err := Redact([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got := string(out)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, g := range tt.gone {
				if strings.Contains(got, g) {
					t.Errorf("still holds %q:\n%s", g, got)
				}
			}
			if tt.unchanged && (strings.Contains(got, Redacted) || len(secrets) > 0) {
				t.Errorf("redacted what is not secret:\n%s", got)
			}
			if !slices.Equal(secrets, tt.secrets) && !tt.unchanged {
				t.Errorf("secrets %q, want %q", secrets, tt.secrets)
			}
		})
	}
}

func TestRedactRefusesWhatIsNotYAML(t *testing.T) {
	if _, _, err := Redact([]byte("a: [unclosed")); err == nil {
		t.Fatal("no error")
	}
}

func TestScrub(t *testing.T) {
	got := Scrub(`failed to start "otlp_http/vendor": header "x-team: s3cr3t-literal" refused (ab)`, []string{"s3cr3t-literal", "ab"})
	if strings.Contains(got, "s3cr3t-literal") || !strings.Contains(got, "(ab)") {
		t.Fatalf("%q", got)
	}
}
