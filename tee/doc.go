// Package tee runs a command the way a container runtime would, for a
// container whose runtime cannot be reached (EKS Fargate): it passes the
// command's stdout and stderr through unchanged, and also writes every line of
// both to a log file in the format containerd writes
// (<RFC3339Nano time> <stdout|stderr> <P|F> <text>), where the kubelet would
// put it, so that a collector sidecar reads it with the same configuration as a
// node-level collector.
//
// It is a correct PID 1 (signals forwarded, orphans reaped, the command's exit
// code returned), reads both pipes in one loop so that the file's order is the
// order of arrival, and never lets the file slow the command down: lines that
// cannot be written in time are counted and reported in the file once writing
// works again.
//
// The package depends on the standard library and logrotate only, so that the
// wrapper binary stays small.
package tee
