package injector

import (
	"testing"

	"github.com/fargate-otel/fargate-otel/injector/collectorconfig"
)

// TestRenderCacheFollowsTheConfig: the memoised render is Render's output
// for every config, including one changed in place after it was rendered
// (the cache keeps its own copy), and one that differs only deep inside an
// exporter's settings.
func TestRenderCacheFollowsTheConfig(t *testing.T) {
	check := func(cc collectorconfig.Config) string {
		t.Helper()
		want, wantErr := collectorconfig.Render(cc)
		for range 2 { // a miss, then a hit
			got, err := render(cc)
			if got != string(want) || (err == nil) != (wantErr == nil) {
				t.Fatalf("render:\n%s (%v)\nwant:\n%s (%v)", got, err, want, wantErr)
			}
		}
		return string(want)
	}
	cc := collectorconfig.Default()
	cc.ClusterName = "render-cache-test"
	first := check(cc)

	settings := cc.Exporters[0].Config
	settings["tls"].(map[string]any)["insecure"] = false // in place, deep inside
	if check(cc) == first {
		t.Fatal("a changed exporter setting rendered the same config")
	}
	settings["tls"].(map[string]any)["insecure"] = true
	if check(cc) != first {
		t.Fatal("the first config again rendered differently")
	}

	cc.Signals = []collectorconfig.Signal{collectorconfig.Logs}
	cc.Exporters = append(cc.Exporters, collectorconfig.Exporter{ID: "debug", Config: map[string]any{"verbosity": "basic"}})
	check(cc)
	cc.Exporters[1].Config["verbosity"] = []string{"basic"} // a type no YAML decode gives: rendered, not cached
	check(cc)
}
