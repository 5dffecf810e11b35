// Package logrotate rotates log files by size and keeps a folder of logs
// under a disk budget.
//
// Two users share it. The wrapper fargate-otel-tee writes its CRI log through a
// Writer, which rotates on record boundaries (a record is a line ending in
// '\n') so that no line is ever split across two files. The sweeper (Sweep)
// rotates and prunes files that an application writes itself.
//
// Backups follow the kubelet's naming, <name>.<YYYYMMDD-HHMMSS> in UTC next to
// <name>, so that the collector's container parser, which reads pod metadata
// from the path, also accepts them. Names are unique and sort by age: when the
// name for the current second is taken, the next free second is used.
//
// Files are created 0644 and folders 0755 whatever the umask, because the
// collector reading them runs as another user in the same pod.
//
// The package uses the standard library only; the reasons for not using
// lumberjack are in the README (section "The wrapper").
package logrotate
