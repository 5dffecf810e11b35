package main

// This distribution's own file_log operators register themselves with
// stanza's operator registry from their init; the import is what puts them
// in the binary. container_cri (internal/crioperator) replaces the
// upstream container operator in the sidecar's config: the same records of
// CRI files, at a fraction of the CPU.
import _ "github.com/fargate-otel/fargate-otel/cmd/fargate-otel-collector/internal/crioperator"
