package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors a failed write is made of; the agent reports them to Bootyard as the reason.
var (
	ErrChecksumMismatch = errors.New("checksum mismatch")
	ErrDiskTooSmall     = errors.New("disk too small")
)

// Image describes the bytes the writer is given, as Bootyard serves them.
type Image struct {
	Format Format
	// SHA256 is the hex digest of the served (possibly compressed) file.
	SHA256 string
	// Size is the served file's size in bytes; 0 when unknown.
	Size int64
}

// Progress is a snapshot of a write: Read counts served bytes consumed (so Read/Total
// is the percentage also for compressed images), Written the bytes put on the disk.
type Progress struct {
	Read, Total, Written int64
}

// Result is what a successful write put on the disk.
type Result struct {
	// Written is the length of the decoded image on the disk, from offset 0.
	Written int64
	SHA256  string
}

// chunkSize is the unit of every write: large enough that a block device sees big
// sequential requests, small enough that four of them in flight stay cheap in RAM.
const chunkSize = 4 << 20

// WriteImage streams src (the served image file) to dst from offset 0, decoding
// img.Format and hashing the served bytes on the way. It fails with ErrDiskTooSmall
// before writing past diskSize, and with ErrChecksumMismatch when the digest differs
// from img.SHA256. Whenever it fails after writing, the first and last MiB of what it
// wrote are zeroed again, so a machine never boots a partial or unverified image.
// Reading and writing overlap: one goroutine decodes while the caller's goroutine
// writes. report, if not nil, is called after every chunk.
func WriteImage(ctx context.Context, dst io.WriterAt, diskSize int64, src io.Reader, img Image, report func(Progress)) (Result, error) {
	want := strings.ToLower(img.SHA256)
	if _, err := hex.DecodeString(want); err != nil || len(want) != sha256.Size*2 {
		return Result{}, fmt.Errorf("image sha256 %q: not a hex sha256 digest", img.SHA256)
	}
	if img.Format == FormatRaw && img.Size > diskSize {
		return Result{}, fmt.Errorf("%w: image is %d bytes, disk %d", ErrDiskTooSmall, img.Size, diskSize)
	}
	hash := sha256.New()
	served := &countingReader{r: io.TeeReader(src, hash)}
	decoded, closeDecoder, err := decoder(img.Format, served)
	if err != nil {
		return Result{}, err
	}

	chunks := make(chan []byte, 2)
	free := make(chan []byte, 4)
	for range cap(free) {
		free <- make([]byte, chunkSize)
	}
	readErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The goroutine owns the decoder: on an early return it may still be inside a Read,
	// and it ends at its next chunk boundary once ctx is cancelled.
	go func() {
		defer close(chunks)
		defer closeDecoder()
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			n, err := fill(decoded, buf)
			if n > 0 {
				select {
				case chunks <- buf[:n]:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
			}
			if err == io.EOF {
				// Drain what a decoder left unread (gzip trailer, padding) so the hash
				// covers the whole served file.
				_, err = io.Copy(io.Discard, served)
				readErr <- err
				return
			}
			if err != nil {
				readErr <- fmt.Errorf("read image: %w", err)
				return
			}
		}
	}()

	var written int64
	// rejected ends a write that failed after bytes reached the disk: what is there is
	// not the image, so its partition tables and boot code must not survive.
	rejected := func(err error) (Result, error) {
		cancel()
		if written > 0 {
			err = errors.Join(err, invalidate(dst, written))
		}
		return Result{Written: written}, err
	}
	for buf := range chunks {
		if written+int64(len(buf)) > diskSize {
			return rejected(fmt.Errorf("%w: image needs more than %d bytes", ErrDiskTooSmall, diskSize))
		}
		n, err := dst.WriteAt(buf, written)
		if err == nil && n < len(buf) {
			err = io.ErrShortWrite
		}
		if err != nil {
			err = fmt.Errorf("write disk at offset %d: %w", written+int64(n), err)
			written += int64(n)
			return rejected(err)
		}
		written += int64(n)
		free <- buf[:cap(buf)]
		if report != nil {
			report(Progress{Read: served.n.Load(), Total: img.Size, Written: written})
		}
	}
	if err := <-readErr; err != nil {
		return rejected(err)
	}
	got := hex.EncodeToString(hash.Sum(nil))
	if got != want {
		return rejected(fmt.Errorf("%w: served image has sha256 %s, catalog says %s (%d bytes read)", ErrChecksumMismatch, got, want, served.n.Load()))
	}
	if img.Size > 0 && served.n.Load() != img.Size {
		return rejected(fmt.Errorf("%w: read %d bytes, catalog says %d", ErrChecksumMismatch, served.n.Load(), img.Size))
	}
	return Result{Written: written, SHA256: got}, nil
}

// invalidate zeroes the first and last MiB of a rejected image: its partition tables
// (GPT primary and backup) and boot code, so firmware and the kernel see an empty disk.
func invalidate(dst io.WriterAt, written int64) error {
	const edge = 1 << 20
	head := min(edge, written)
	zero := make([]byte, head)
	if _, err := dst.WriteAt(zero, 0); err != nil {
		return fmt.Errorf("erase rejected image's head: %w", err)
	}
	if tail := min(edge, written-head); tail > 0 {
		if _, err := dst.WriteAt(zero[:tail], written-tail); err != nil {
			return fmt.Errorf("erase rejected image's tail: %w", err)
		}
	}
	return nil
}

// fill reads until buf is full or the stream ends. Unlike io.ReadFull it keeps a
// decoder's own io.ErrUnexpectedEOF (a truncated gzip stream) apart from a short last
// chunk: only a plain io.EOF is the end of the image.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
