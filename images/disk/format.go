package disk

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Format is how an image file is encoded on the wire.
type Format string

// The formats the writer decodes while streaming.
const (
	FormatRaw  Format = "raw"
	FormatGzip Format = "gzip"
	FormatZstd Format = "zstd"
)

// ParseFormat turns the task's format string into a Format; empty means raw.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatRaw:
		return FormatRaw, nil
	case FormatGzip, FormatZstd:
		return Format(s), nil
	}
	return "", fmt.Errorf("image format %q: want raw, gzip or zstd", s)
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decoder wraps r in the decompressor for format. The magic bytes are checked so that a
// catalog entry that says gzip for a raw file fails loudly instead of writing garbage.
func decoder(format Format, r io.Reader) (io.Reader, func(), error) {
	if format == FormatRaw {
		return r, func() {}, nil
	}
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(4)
	if err != nil && len(head) < 2 {
		return nil, nil, fmt.Errorf("read %s header: %w", format, err)
	}
	switch format {
	case FormatGzip:
		if !bytes.HasPrefix(head, gzipMagic) {
			return nil, nil, fmt.Errorf("image says gzip but starts with % x", head)
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip header: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case FormatZstd:
		if !bytes.HasPrefix(head, zstdMagic) {
			return nil, nil, fmt.Errorf("image says zstd but starts with % x", head)
		}
		// One decoder goroutine keeps memory bounded (the agent runs in RAM) and is
		// faster than the disk anyway.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd header: %w", err)
		}
		return zr, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("image format %q: not supported", format)
}
