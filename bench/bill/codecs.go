package main

import (
	"io"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
)

// The sink in this process must decode what the collector's exporter
// sends with -compression: gzip comes with grpc; zstd and snappy (framed,
// as the collector's configgrpc writes them) are registered here.
func init() {
	encoding.RegisterCompressor(zstdCodec{})
	encoding.RegisterCompressor(snappyCodec{})
}

type zstdCodec struct{}

func (zstdCodec) Name() string { return "zstd" }

func (zstdCodec) Compress(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w) }

func (zstdCodec) Decompress(r io.Reader) (io.Reader, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}

type snappyCodec struct{}

func (snappyCodec) Name() string { return "snappy" }

func (snappyCodec) Compress(w io.Writer) (io.WriteCloser, error) {
	return snappy.NewBufferedWriter(w), nil
}

func (snappyCodec) Decompress(r io.Reader) (io.Reader, error) { return snappy.NewReader(r), nil }
