package logrotate

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// kubeletPathRegex is the end of the path pattern of the collector's container
// parser (pkg/stanza operator/parser/container): backups must match it.
var kubeletPathRegex = regexp.MustCompile(`(?P<restart_count>\d+)\.log(\.\d{8}-\d{6})?$`)

func TestBackupNameFollowsTheKubelet(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))
	got := BackupName("3.log", at)
	if got != "3.log.20260304-040607" {
		t.Fatalf("BackupName = %q, want 3.log.20260304-040607 (UTC, whole seconds)", got)
	}
	if !kubeletPathRegex.MatchString("/var/log/pods/ns_pod_uid/c/" + got) {
		t.Fatalf("%q does not match the collector's path pattern", got)
	}
	name, back, ok := ParseBackupName(got)
	if !ok || name != "3.log" || !back.Equal(at.Truncate(time.Second)) {
		t.Fatalf("ParseBackupName(%q) = %q, %v, %v", got, name, back, ok)
	}
}

func TestParseBackupNameRejectsOtherNames(t *testing.T) {
	for _, s := range []string{"", "0.log", "0.log.", "0.log.2026030-040607", "0.log.20260304_040607", "0.log.20261304-040607", "0.log.2026030a-040607", "app-2026-03-04T04-06-07.000.log", ".20260304-040607"} {
		if name, _, ok := ParseBackupName(s); ok {
			t.Errorf("ParseBackupName(%q) accepted it (name %q)", s, name)
		}
	}
}

func TestNextBackupTimeIsUniqueAndOrdered(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 500, time.UTC)
	var times []time.Time
	var names []string
	for i := 0; i < 5; i++ {
		at := nextBackupTime(dir, "0.log", now, times)
		name := BackupName("0.log", at)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		times = append(times, at)
		names = append(names, name)
	}
	for i := 1; i < len(names); i++ {
		if names[i] <= names[i-1] {
			t.Fatalf("names do not sort by age: %v", names)
		}
	}
	if names[0] != "0.log.20260101-000000" || names[4] != "0.log.20260101-000004" {
		t.Fatalf("names = %v, want seconds 00..04", names)
	}
	// A clock that went back still yields a newer name than every backup.
	at := nextBackupTime(dir, "0.log", now.Add(-time.Hour), times)
	if BackupName("0.log", at) <= names[4] {
		t.Fatalf("after the clock went back: %s is not after %s", BackupName("0.log", at), names[4])
	}
}
