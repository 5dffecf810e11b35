package sidecarconfig

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// renderedExporters renders c and returns the exporters section.
func renderedExporters(t *testing.T, c Config) map[string]map[string]any {
	t.Helper()
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Exporters map[string]map[string]any `yaml:"exporters"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Exporters
}

// TestDiskQueuesAreBounded: every sending queue kept on the logs volume is
// counted in bytes and takes its share of DiskQueueMiB (one queue per
// exporter and signal), so that a gateway outage cannot fill the volume.
func TestDiskQueuesAreBounded(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*Config)
		want   map[string]int64 // exporter -> queue_size; 0: no disk queue
	}{
		{"default: one exporter, three signals", nil, map[string]int64{DefaultGatewayExporterID: 32 << 20 / 3}},
		{"logs only", func(c *Config) { c.Signals = []Signal{Logs} }, map[string]int64{DefaultGatewayExporterID: 32 << 20}},
		{"a bigger volume", func(c *Config) { c.DiskQueueMiB = 96 }, map[string]int64{DefaultGatewayExporterID: 32 << 20}},
		{"two exporters on disk", func(c *Config) {
			c.DiskQueueMiB = 64
			logs := GatewayExporter("logs.example.com:4317")
			logs.ID, logs.Signals = "otlp_grpc/logs", []Signal{Logs}
			c.Exporters = append(c.Exporters, logs)
		}, map[string]int64{DefaultGatewayExporterID: 16 << 20, "otlp_grpc/logs": 16 << 20}},
		{"a queue in memory is left alone", func(c *Config) {
			c.Exporters = append(c.Exporters, Exporter{ID: "otlp_http/vendor", Config: map[string]any{"endpoint": "https://x.example.com"}})
		}, map[string]int64{DefaultGatewayExporterID: 32 << 20 / 3, "otlp_http/vendor": 0}},
		{"a disabled queue is left alone", func(c *Config) {
			c.Exporters[0].Config["sending_queue"] = map[string]any{"enabled": false, "storage": StorageExtensionID}
		}, map[string]int64{DefaultGatewayExporterID: 0}},
		{"a smaller size is kept", func(c *Config) {
			c.Exporters[0].Config["sending_queue"] = map[string]any{"storage": StorageExtensionID, "queue_size": 9 << 20, "sizer": "bytes"}
		}, map[string]int64{DefaultGatewayExporterID: 9 << 20}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if tt.modify != nil {
				tt.modify(&c)
			}
			before := len(c.Exporters[0].Config)
			got := renderedExporters(t, c)
			for id, size := range tt.want {
				q, _ := got[id]["sending_queue"].(map[string]any)
				if size == 0 {
					if q != nil && (q["sizer"] != nil || q["queue_size"] != nil) {
						t.Errorf("%s: queue not on disk but bounded: %v", id, q)
					}
					continue
				}
				if q["sizer"] != "bytes" || q["storage"] != StorageExtensionID {
					t.Errorf("%s: sending_queue %v: want the bytes sizer on %s", id, q, StorageExtensionID)
				}
				if v, _ := toInt64(q["queue_size"]); v != size {
					t.Errorf("%s: queue_size %v, want %d", id, q["queue_size"], size)
				}
			}
			if q, _ := c.Exporters[0].Config["sending_queue"].(map[string]any); len(c.Exporters[0].Config) != before || (q != nil && q["sizer"] == "bytes" && q["queue_size"] == nil) {
				t.Error("Render changed the caller's exporter config")
			}
		})
	}
}

func TestDiskQueuesThatDoNotFitAreRefused(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"too little room", func(c *Config) { c.DiskQueueMiB = 16 }, "3 sending queues on disk"},
		{"no room", func(c *Config) { c.DiskQueueMiB = 0 }, "below 8 MiB each"},
		{"counted in requests", func(c *Config) {
			c.Exporters[0].Config["sending_queue"] = map[string]any{"storage": StorageExtensionID, "sizer": "requests"}
		}, "use sizer: bytes"},
		{"larger than its share", func(c *Config) {
			c.Exporters[0].Config["sending_queue"] = map[string]any{"storage": StorageExtensionID, "queue_size": 1 << 30}
		}, "more than its share of the logs volume"},
		{"not a size", func(c *Config) {
			c.Exporters[0].Config["sending_queue"] = map[string]any{"storage": StorageExtensionID, "queue_size": "lots"}
		}, "not a positive number of bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			_, err := Render(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render error %v, want one saying %q", err, tt.want)
			}
		})
	}
}
