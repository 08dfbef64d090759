// Package disktest makes the disk images and disks that the image writer's tests and the
// QEMU end-to-end tests install: small GPT and MBR images with random partition bytes,
// built in Go, and sparse files standing in for disks.
package disktest

import (
	"crypto/rand"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/google/uuid"
)

const mib = 1 << 20

// GPTImage writes a GPT disk image of size bytes to path: one Linux partition from
// 1 MiB up to the last usable sector, filled with random bytes, and the backup header
// at the image's end (where it must move from when the image lands on a larger disk).
func GPTImage(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("gpt image: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("gpt image: %w", err)
	}
	// 33 sectors at the end hold the backup array and header.
	end := uint64(size/512) - 34
	t := &gpt.Table{
		LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{
			Index: 1, Start: mib / 512, End: end, Type: gpt.LinuxFilesystem, Name: "root", GUID: uuid.NewString(),
		}},
	}
	if err := t.Write(f, size); err != nil {
		return fmt.Errorf("gpt image: %w", err)
	}
	if err := fillRandom(f, mib, int64(end+1)*512); err != nil {
		return fmt.Errorf("gpt image: %w", err)
	}
	return f.Close()
}

// MBRImage writes an MBR disk image of size bytes to path with one Linux partition
// from 1 MiB to the end, filled with random bytes.
func MBRImage(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("mbr image: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("mbr image: %w", err)
	}
	t := &mbr.Table{
		LogicalSectorSize: 512, PhysicalSectorSize: 512,
		Partitions: []*mbr.Partition{{Index: 1, Type: mbr.Linux, Start: mib / 512, Size: uint32((size - mib) / 512)}},
	}
	if err := t.Write(f, size); err != nil {
		return fmt.Errorf("mbr image: %w", err)
	}
	// The 0x55AA boot signature: go-diskfs writes only the table part of the sector.
	if _, err := f.WriteAt([]byte{0x55, 0xaa}, 510); err != nil {
		return fmt.Errorf("mbr image: %w", err)
	}
	if err := fillRandom(f, mib, size); err != nil {
		return fmt.Errorf("mbr image: %w", err)
	}
	return f.Close()
}

// SparseDisk creates a sparse file of size bytes at path: a blank disk.
func SparseDisk(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("sparse disk: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("sparse disk: %w", err)
	}
	return f.Close()
}

func fillRandom(f *os.File, from, to int64) error {
	buf := make([]byte, 4*mib)
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		rand.Read(buf[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
