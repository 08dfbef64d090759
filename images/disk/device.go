package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is an open disk: a block device on a machine being installed, or a regular
// (usually sparse) file standing in for one.
type Device struct {
	f          *os.File
	size       int64
	sectorSize int
	block      bool
}

// Open opens path for reading and writing. A block device is opened O_EXCL so that a
// mounted or otherwise claimed disk is refused instead of being overwritten under a user.
func Open(path string) (*Device, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open disk %s: %w", path, err)
	}
	block := fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	flags := os.O_RDWR
	if block {
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("open disk %s: %w", path, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("disk %s size: %w", path, err)
	}
	d := &Device{f: f, size: size, sectorSize: 512, block: block}
	if block {
		ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("disk %s sector size: %w", path, err)
		}
		d.sectorSize = ss
	}
	return d, nil
}

// Name is the path the device was opened with.
func (d *Device) Name() string { return d.f.Name() }

// Size is the device's size in bytes.
func (d *Device) Size() int64 { return d.size }

// SectorSize is the logical sector size: 512 for files.
func (d *Device) SectorSize() int { return d.sectorSize }

// File is the open file, for go-diskfs and for reading back.
func (d *Device) File() *os.File { return d.f }

// WriteAt writes to the device.
func (d *Device) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }

// ReadAt reads from the device.
func (d *Device) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// Sync flushes the device's write cache.
func (d *Device) Sync() error { return d.f.Sync() }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// ErrDiscardUnsupported says the device cannot discard; wiping goes on with writes.
var ErrDiscardUnsupported = errors.New("discard not supported")

// Discard tells the device that [off, off+length) holds no data: BLKDISCARD on a block
// device, a punched hole in a file (which reads back as zeros, like a thin-provisioned
// or TRIM-zeroing disk).
func (d *Device) Discard(off, length int64) error {
	if length <= 0 {
		return nil
	}
	var err error
	if d.block {
		rng := [2]uint64{uint64(off), uint64(length)}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&rng[0])))
		if errno != 0 {
			err = errno
		}
	} else {
		err = unix.Fallocate(int(d.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("discard %s: %w (%v)", d.Name(), ErrDiscardUnsupported, err)
	default:
		return fmt.Errorf("discard %s [%d,+%d): %w", d.Name(), off, length, err)
	}
}
