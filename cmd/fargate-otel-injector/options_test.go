package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fargate-otel/fargate-otel/injector"
)

func TestSupportsNativeSidecars(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    bool
	}{
		{"v1.28.9", false},
		{"v1.28.15-eks-a737599", false},
		{"v1.29.0", true},
		{"v1.29.4-eks-036c24b", true},
		{"v1.35.4", true},
		{"v2.0.0", true},
	} {
		got, err := supportsNativeSidecars(tc.version)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.version, got, err, tc.want)
		}
	}
	if _, err := supportsNativeSidecars("garbage"); err == nil || !strings.Contains(err.Error(), "--native-sidecars") {
		t.Errorf("an unreadable version must say how to decide by hand: %v", err)
	}
}

func TestOptionsFlagsOverrideConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "clusterName: from-file\nimages:\n  tee: file/tee:1\n  collector: file/collector:1\nkubeletStats:\n  mode: direct\nexporters:\n- id: otlp_grpc/gateway\n  config:\n    endpoint: gateway:4317\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseOptions([]string{"--config", file, "--cluster-name=from-flag", "--kubelet-stats-mode=off",
		"--insecure-registries=a.test:5000, b.test", "--image-lookup-budget=2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.ClusterName != "from-flag" || o.cfg.KubeletStats.Mode != injector.KubeletStatsOff {
		t.Errorf("flags did not override the file: %q, %q", o.cfg.ClusterName, o.cfg.KubeletStats.Mode)
	}
	if o.cfg.Images.Tee != "file/tee:1" || len(o.cfg.Exporters) != 1 || o.cfg.Exporters[0].ID != "otlp_grpc/gateway" {
		t.Errorf("the file's settings were lost: %+v", o.cfg)
	}
	if strings.Join(o.insecureRegistries, "|") != "a.test:5000|b.test" || o.lookupBudget != 2*time.Second {
		t.Errorf("registry settings: %q, %s", o.insecureRegistries, o.lookupBudget)
	}
}

func TestOptionsRejectBadSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--image-lookup-budget=12s"}, "webhook timeout"},
		{[]string{"--image-lookup-budget=4s", "--image-fetch-timeout=1s"}, "shorter"},
		{[]string{"--native-sidecars=maybe"}, "auto, true or false"},
		{[]string{"--kubelet-stats-mode=sometimes"}, "kubeletStats.mode"},
		{[]string{"--log-format=xml"}, "json or text"},
		{[]string{"--config=/does/not/exist"}, "read injector config"},
		{[]string{"extra"}, "every setting is a flag"},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}
