//go:build !amd64 && !arm64

package tee

// sysPwritev2 is unknown here: passthrough uses regular writes only.
const sysPwritev2 = 0
