// Package settingsprovider is the collector distribution's `fargate` config
// provider: it reads a pod's collector settings (sidecarconfig's compact
// JSON, written by the injector) and renders the whole collector config
// from them, so that the pod spec carries only what is particular to the
// pod.
//
//	--config=fargate:env:FARGATE_OTEL_SETTINGS   settings in an env var
//	--config=fargate:file:/path/settings.json    settings in a file
package settingsprovider

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/confmap"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Options change what the provider renders.
type Options struct {
	// Apply, when set, changes the decoded settings before they are
	// rendered: the sidecar's supervisor lays the fleet's live settings
	// over the pod's own here.
	Apply func(sidecarconfig.Config) (sidecarconfig.Config, error)
}

// NewFactory returns the provider's factory.
func NewFactory(opts Options) confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider {
		return &provider{opts: opts}
	})
}

type provider struct{ opts Options }

func (*provider) Scheme() string { return sidecarconfig.SettingsScheme }

func (*provider) Shutdown(context.Context) error { return nil }

func (p *provider) Retrieve(_ context.Context, uri string, _ confmap.WatcherFunc) (*confmap.Retrieved, error) {
	data, err := Read(uri)
	if err != nil {
		return nil, err
	}
	rendered, err := p.Render(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	return confmap.NewRetrievedFromYAML(rendered)
}

// Render decodes settings, applies Options.Apply and renders the config.
func (p *provider) Render(settings []byte) ([]byte, error) {
	cfg, err := sidecarconfig.Decode(settings)
	if err != nil {
		return nil, err
	}
	if p.opts.Apply != nil {
		if cfg, err = p.opts.Apply(cfg); err != nil {
			return nil, err
		}
	}
	return sidecarconfig.Render(cfg)
}

// Read returns the settings a fargate: URI names.
func Read(uri string) ([]byte, error) {
	rest, ok := strings.CutPrefix(uri, sidecarconfig.SettingsScheme+":")
	if !ok {
		return nil, fmt.Errorf("%q is not a %s: URI", uri, sidecarconfig.SettingsScheme)
	}
	kind, where, _ := strings.Cut(rest, ":")
	switch kind {
	case "env":
		v, ok := os.LookupEnv(where)
		if !ok {
			return nil, fmt.Errorf("%s: the env var %s is not set: the injector sets it on the sidecar; run the collector with the pod's env, or give --config=fargate:file:PATH", uri, where)
		}
		return []byte(v), nil
	case "file":
		b, err := os.ReadFile(where)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", uri, err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("%q: use %s:env:NAME or %s:file:PATH", uri, sidecarconfig.SettingsScheme, sidecarconfig.SettingsScheme)
	}
}
