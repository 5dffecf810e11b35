package injector

import (
	"testing"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// TestRenderCacheFollowsTheConfig: the memoised render is Encode's output
// and the hash of Render's for every config, including one changed in place after it was rendered
// (the cache keeps its own copy), and one that differs only deep inside an
// exporter's settings.
func TestRenderCacheFollowsTheConfig(t *testing.T) {
	check := func(cc sidecarconfig.Config) string {
		t.Helper()
		yaml, wantErr := sidecarconfig.Render(cc)
		settings, _ := sidecarconfig.Encode(cc)
		want := rendered{settings: string(settings), hash: sidecarconfig.Hash(yaml)}
		for range 2 { // a miss, then a hit
			got, err := render(cc)
			if got != want || (err == nil) != (wantErr == nil) {
				t.Fatalf("render:\n%+v (%v)\nwant:\n%+v (%v)", got, err, want, wantErr)
			}
		}
		return want.hash
	}
	cc := sidecarconfig.Default()
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

	cc.Signals = []sidecarconfig.Signal{sidecarconfig.Logs}
	cc.Exporters = append(cc.Exporters, sidecarconfig.Exporter{ID: "debug", Config: map[string]any{"verbosity": "basic"}})
	check(cc)
	cc.Exporters[1].Config["verbosity"] = []string{"basic"} // a type no YAML decode gives: rendered, not cached
	check(cc)
}
