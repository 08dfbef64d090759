package disk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

const mib = 1 << 20

// testImage builds a GPT image of size bytes and returns its bytes.
func testImage(t testing.TB, size int64) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.raw")
	if err := disktest.GPTImage(path, size); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encode(t testing.TB, format disk.Format, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch format {
	case disk.FormatRaw:
		return raw
	case disk.FormatGzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case disk.FormatZstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sparseDisk(t testing.TB, size int64) *disk.Device {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := disktest.SparseDisk(path, size); err != nil {
		t.Fatal(err)
	}
	d, err := disk.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func readDisk(t testing.TB, d *disk.Device, off, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := d.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteImage_EveryFormatLandsOnTheDiskByteForByte(t *testing.T) {
	raw := testImage(t, 16*mib)
	for _, format := range []disk.Format{disk.FormatRaw, disk.FormatGzip, disk.FormatZstd} {
		t.Run(string(format), func(t *testing.T) {
			served := encode(t, format, raw)
			d := sparseDisk(t, 64*mib)
			var last disk.Progress
			res, err := disk.WriteImage(context.Background(), d, d.Size(), bytes.NewReader(served),
				disk.Image{Format: format, SHA256: sum(served), Size: int64(len(served))},
				func(p disk.Progress) { last = p })
			if err != nil {
				t.Fatalf("WriteImage: %v", err)
			}
			if res.Written != int64(len(raw)) || res.SHA256 != sum(served) {
				t.Errorf("result = %+v, want %d bytes and sha256 %s", res, len(raw), sum(served))
			}
			if got := readDisk(t, d, 0, int64(len(raw))); !bytes.Equal(got, raw) {
				t.Error("disk content differs from the image")
			}
			if last.Read != int64(len(served)) || last.Total != int64(len(served)) || last.Written != int64(len(raw)) {
				t.Errorf("last progress = %+v, want all %d served bytes read and %d written", last, len(served), len(raw))
			}
		})
	}
}

func TestWriteImage_ChecksumMismatchFailsAndErasesThePartitionTables(t *testing.T) {
	raw := testImage(t, 8*mib)
	for _, format := range []disk.Format{disk.FormatRaw, disk.FormatZstd} {
		t.Run(string(format), func(t *testing.T) {
			served := encode(t, format, raw)
			d := sparseDisk(t, 32*mib)
			_, err := disk.WriteImage(context.Background(), d, d.Size(), bytes.NewReader(served),
				disk.Image{Format: format, SHA256: sum([]byte("another image")), Size: int64(len(served))}, nil)
			if !errors.Is(err, disk.ErrChecksumMismatch) {
				t.Fatalf("err = %v, want ErrChecksumMismatch", err)
			}
			if parts := disk.ReadPartitions(d); len(parts) != 0 {
				t.Errorf("rejected image left partitions %v readable", parts)
			}
			zero := make([]byte, mib)
			if !bytes.Equal(readDisk(t, d, 0, mib), zero) || !bytes.Equal(readDisk(t, d, int64(len(raw))-mib, mib), zero) {
				t.Error("first or last MiB of the rejected image is not zeroed")
			}
		})
	}
}

func TestWriteImage_TruncatedDownloadIsAChecksumFailure(t *testing.T) {
	raw := testImage(t, 8*mib)
	tests := []struct {
		name   string
		format disk.Format
		want   error
	}{
		{"raw", disk.FormatRaw, disk.ErrChecksumMismatch},
		{"gzip", disk.FormatGzip, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			served := encode(t, tt.format, raw)
			d := sparseDisk(t, 32*mib)
			_, err := disk.WriteImage(context.Background(), d, d.Size(), bytes.NewReader(served[:len(served)/2]),
				disk.Image{Format: tt.format, SHA256: sum(served), Size: int64(len(served))}, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWriteImage_DiskTooSmallIsRefused(t *testing.T) {
	raw := testImage(t, 16*mib)
	for _, format := range []disk.Format{disk.FormatRaw, disk.FormatZstd} {
		t.Run(string(format), func(t *testing.T) {
			served := encode(t, format, raw)
			d := sparseDisk(t, 10*mib)
			_, err := disk.WriteImage(context.Background(), d, d.Size(), bytes.NewReader(served),
				disk.Image{Format: format, SHA256: sum(served), Size: int64(len(served))}, nil)
			if !errors.Is(err, disk.ErrDiskTooSmall) {
				t.Fatalf("err = %v, want ErrDiskTooSmall", err)
			}
			if fi, _ := os.Stat(d.Name()); fi.Size() != 10*mib {
				t.Errorf("disk file grew to %d bytes", fi.Size())
			}
			// Raw fails before writing; zstd after 8 MiB, which must not stay bootable.
			if !bytes.Equal(readDisk(t, d, 0, mib), make([]byte, mib)) {
				t.Error("the partial image's first MiB is on the disk")
			}
		})
	}
}

// shortWriter accepts only half of every write, without an error, as a failing device
// or a full filesystem under a file can.
type shortWriter struct{ d *disk.Device }

func (s shortWriter) WriteAt(p []byte, off int64) (int, error) { return s.d.WriteAt(p[:len(p)/2], off) }

func TestWriteImage_ShortWriteFails(t *testing.T) {
	raw := testImage(t, 8*mib)
	d := sparseDisk(t, 32*mib)
	_, err := disk.WriteImage(context.Background(), shortWriter{d}, d.Size(), bytes.NewReader(raw),
		disk.Image{Format: disk.FormatRaw, SHA256: sum(raw), Size: int64(len(raw))}, nil)
	if !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("err = %v, want io.ErrShortWrite", err)
	}
}

func TestWriteImage_WrongFormatIsRefusedBeforeWriting(t *testing.T) {
	raw := testImage(t, 4*mib)
	d := sparseDisk(t, 8*mib)
	_, err := disk.WriteImage(context.Background(), d, d.Size(), bytes.NewReader(raw),
		disk.Image{Format: disk.FormatGzip, SHA256: sum(raw), Size: int64(len(raw))}, nil)
	if err == nil {
		t.Fatal("a raw image declared as gzip was written")
	}
	if !bytes.Equal(readDisk(t, d, 0, mib), make([]byte, mib)) {
		t.Error("disk was written to")
	}
}

func TestWriteImage_StopsWhenCancelled(t *testing.T) {
	raw := testImage(t, 16*mib)
	d := sparseDisk(t, 32*mib)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := disk.WriteImage(ctx, d, d.Size(), bytes.NewReader(raw),
		disk.Image{Format: disk.FormatRaw, SHA256: sum(raw), Size: int64(len(raw))}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// BenchmarkWriteImage1GiB writes a 1 GiB raw image (one random 4 MiB block repeated,
// streamed from memory), sha256 included: to a sparse file with a flush at the end (the
// host disk's speed), and to a writer that drops the bytes (the writer's own ceiling).
func BenchmarkWriteImage1GiB(b *testing.B) {
	const size = 1 << 30
	block := make([]byte, 4*mib)
	for i := range block {
		block[i] = byte(i * 7)
	}
	h := sha256.New()
	for range size / len(block) {
		h.Write(block)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	targets := []struct {
		name string
		dst  func(b *testing.B) (io.WriterAt, func() error)
	}{
		{"sparse-file", func(b *testing.B) (io.WriterAt, func() error) {
			d := sparseDisk(b, size+64*mib)
			return d, d.Sync
		}},
		{"discard", func(*testing.B) (io.WriterAt, func() error) {
			return discardWriter{}, func() error { return nil }
		}},
	}
	for _, target := range targets {
		b.Run(target.name, func(b *testing.B) {
			dst, flush := target.dst(b)
			b.SetBytes(size)
			for b.Loop() {
				src := io.LimitReader(&repeatReader{block: block}, size)
				if _, err := disk.WriteImage(context.Background(), dst, size+64*mib, src,
					disk.Image{Format: disk.FormatRaw, SHA256: digest, Size: size}, nil); err != nil {
					b.Fatal(err)
				}
				if err := flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type discardWriter struct{}

func (discardWriter) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

type repeatReader struct {
	block []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}
