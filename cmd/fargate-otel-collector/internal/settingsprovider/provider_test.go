package settingsprovider

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

func retrieve(t *testing.T, opts Options, uri string) (*confmap.Conf, error) {
	t.Helper()
	p := NewFactory(opts).Create(confmap.ProviderSettings{})
	r, err := p.Retrieve(context.Background(), uri, nil)
	if err != nil {
		return nil, err
	}
	return r.AsConf()
}

func TestRendersTheSettingsOfEnvAndFile(t *testing.T) {
	settings := `{"clusterName":"prod","signals":["traces"]}`
	t.Setenv("TEST_SETTINGS", settings)
	file := filepath.Join(t.TempDir(), "settings.json")
	if err := os.WriteFile(file, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"fargate:env:TEST_SETTINGS", "fargate:file:" + file} {
		conf, err := retrieve(t, Options{}, uri)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		if conf.Get("service::pipelines::traces") == nil || conf.Get("service::pipelines::logs") != nil {
			t.Errorf("%s: pipelines %v, want traces only", uri, conf.Get("service::pipelines"))
		}
	}
}

func TestApplyChangesWhatIsRendered(t *testing.T) {
	t.Setenv("TEST_SETTINGS", `{}`)
	conf, err := retrieve(t, Options{Apply: func(c sidecarconfig.Config) (sidecarconfig.Config, error) {
		c.Exporters = []sidecarconfig.Exporter{{ID: "debug/live"}}
		return c, nil
	}}, "fargate:env:TEST_SETTINGS")
	if err != nil {
		t.Fatal(err)
	}
	if conf.Get("exporters::debug/live") == nil {
		t.Fatalf("exporters: %v", conf.Get("exporters"))
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	t.Setenv("TEST_BAD", `{"signals":[]}`)
	for uri, want := range map[string]string{
		"fargate:env:TEST_UNSET_VAR": "not set",
		"fargate:env:TEST_BAD":       "no signal enabled",
		"fargate:file:/nonexistent":  "no such file",
		"fargate:http:x":             "fargate:env:NAME",
	} {
		if _, err := retrieve(t, Options{}, uri); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", uri, err, want)
		}
	}
}
