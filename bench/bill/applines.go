package main

import (
	"math/rand/v2"
	"strconv"
)

// Words and fields of the lines an app writes, for -text log: what the
// exporter's compression meets in practice compresses far less than x's.
var (
	levels  = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	methods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	paths   = []string{"/api/v1/orders", "/api/v1/carts", "/api/v1/users", "/healthz", "/api/v2/search", "/api/v1/payments", "/static/app.js"}
	words   = []string{"request", "completed", "user", "session", "cache", "miss", "hit", "retrying", "upstream", "timeout",
		"order", "created", "payment", "authorized", "declined", "inventory", "reserved", "released", "queue", "depth",
		"connection", "pool", "exhausted", "slow", "query", "rows", "returned", "token", "refreshed", "expired"}
)

// appLine appends a line of about size bytes (newline included): a level, a
// logger, an HTTP request with its status and duration, ids (random hex, as
// trace and user ids are), then words up to the size.
func appLine(b []byte, seq, size int, r *rand.Rand) []byte {
	start := len(b)
	b = append(b, levels[r.IntN(len(levels))]...)
	b = append(b, " [worker-"...)
	b = strconv.AppendInt(b, int64(r.IntN(16)), 10)
	b = append(b, "] "...)
	b = append(b, methods[r.IntN(len(methods))]...)
	b = append(b, ' ')
	b = append(b, paths[r.IntN(len(paths))]...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(r.IntN(100000)), 10)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64([]int{200, 200, 200, 201, 204, 404, 500}[r.IntN(7)]), 10)
	b = append(b, " dur="...)
	b = strconv.AppendFloat(b, r.Float64()*250, 'f', 1, 64)
	b = append(b, "ms seq="...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, " trace="...)
	b = appendHex(b, r.Uint64(), r.Uint64())
	for len(b)-start < size-1 {
		b = append(b, ' ')
		if r.IntN(8) == 0 {
			b = append(b, "id="...)
			b = appendHex(b, r.Uint64())
		} else {
			b = append(b, words[r.IntN(len(words))]...)
		}
	}
	if len(b)-start > size-1 {
		b = b[:start+size-1]
	}
	return append(b, '\n')
}

func appendHex(b []byte, vs ...uint64) []byte {
	const digits = "0123456789abcdef"
	for _, v := range vs {
		for i := 60; i >= 0; i -= 4 {
			b = append(b, digits[v>>uint(i)&0xf])
		}
	}
	return b
}
