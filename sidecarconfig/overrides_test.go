package sidecarconfig

import (
	"strings"
	"testing"
	"time"
)

func TestOverridesApply(t *testing.T) {
	half := 0.5
	every := Duration(10 * time.Second)
	o := Overrides{
		Exporters:            []Exporter{{ID: "otlp_grpc/second", Config: map[string]any{"endpoint": "second:4317"}}},
		LogLevel:             "debug",
		TraceSampling:        &half,
		KubeletStatsInterval: &every,
	}
	base := Default()
	got, err := o.Apply(base)
	if err != nil {
		t.Fatal(err)
	}
	if got.Exporters[0].ID != "otlp_grpc/second" || got.LogLevel != "debug" || got.TraceSampling != 0.5 || got.KubeletStats.Interval != 10*time.Second {
		t.Fatalf("Apply = %+v", got)
	}
	if base.Exporters[0].ID != DefaultGatewayExporterID || base.LogLevel != "info" {
		t.Fatal("Apply changed its input")
	}
	out, err := Render(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"otlp_grpc/second:", "level: debug", "sampling_percentage: 50", "collection_interval: 10s"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered config lacks %q", want)
		}
	}
	if same, err := (Overrides{}).Apply(base); err != nil || same.LogLevel != "info" {
		t.Fatalf("empty Overrides: %+v %v", same, err)
	}
}

func TestOverridesRoundTripAndRefusals(t *testing.T) {
	in := `{"exporters":[{"id":"debug","config":{"verbosity":"basic"},"signals":["logs"]}],"logLevel":"warn","traceSampling":0.1,"kubeletStatsInterval":"1m0s"}`
	o, err := ParseOverrides([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := o.Encode()
	if err != nil || string(out) != in {
		t.Fatalf("Encode = %s, %v; want %s", out, err, in)
	}
	if o, err := ParseOverrides(nil); err != nil || !o.IsZero() {
		t.Fatalf("empty: %+v %v", o, err)
	}
	bad := 1.5
	for name, tt := range map[string]struct {
		o    Overrides
		json string
		want string
	}{
		"unknown member":   {json: `{"logLvl":"debug"}`, want: "logLvl"},
		"bad level":        {o: Overrides{LogLevel: "verbose"}, want: "log level"},
		"bad sampling":     {o: Overrides{TraceSampling: &bad}, want: "trace sampling"},
		"unknown exporter": {o: Overrides{Exporters: []Exporter{{ID: "kafka"}}}, want: "not built into"},
	} {
		var err error
		if tt.json != "" {
			_, err = ParseOverrides([]byte(tt.json))
		} else {
			_, err = tt.o.Apply(Default())
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
	}
}
