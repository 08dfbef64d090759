package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/google/uuid"
)

// CIDATALabel is the volume label cloud-init's NoCloud datasource looks for.
const CIDATALabel = "CIDATA"

// cidataSize is the CIDATA partition's size: NoCloud files are a few KiB; 8 MiB makes a FAT16
// with about 8,000 clusters, FAT16 by the FAT specification's cluster-count rule (which mtools
// and Windows apply; a FAT32 this small is read as FAT16 by them and looks empty).
const cidataSize = 8 << 20

// align is the partition alignment every modern partitioner uses.
const align = 1 << 20

// ErrNoPartitionTable says the written image has neither a GPT nor an MBR, so there is
// nowhere to declare a CIDATA partition.
var ErrNoPartitionTable = errors.New("image has no partition table")

// Extent is a byte range of the disk.
type Extent struct {
	Offset, Length int64
}

// End is the first byte after the extent.
func (e Extent) End() int64 { return e.Offset + e.Length }

// AddCIDATA adds a FAT filesystem labelled CIDATA holding files (name → bytes, at its
// root) in a new partition after the image's last one, and returns where it put it.
//
// The partition goes at the end of the disk, not right behind the image: the space in
// between stays free for cloud-init's growpart to grow the image's last partition into.
// A GPT image first gets its backup header and array moved to the end of the disk (what
// `sgdisk -e` does) and its old backup header erased; an MBR image gets a primary entry
// of type 0x0e (FAT16 LBA) in its first free slot.
func AddCIDATA(dev *Device, imageSize int64, files map[string][]byte) (Extent, error) {
	st := file.New(dev.File(), false)
	ss := dev.SectorSize()
	if gt, err := gpt.Read(st, ss, ss); err == nil {
		return addCIDATAGPT(dev, st, gt, imageSize, files)
	}
	mt, err := mbr.Read(st, ss, ss)
	if err != nil || !hasPartitions(mt) {
		return Extent{}, fmt.Errorf("add CIDATA to %s: %w", dev.Name(), ErrNoPartitionTable)
	}
	return addCIDATAMBR(dev, st, mt, imageSize, files)
}

func hasPartitions(t *mbr.Table) bool {
	for _, p := range t.Partitions {
		if p != nil && p.Type != mbr.Empty {
			return true
		}
	}
	return false
}

func addCIDATAGPT(dev *Device, st backend.Storage, t *gpt.Table, imageSize int64, files map[string][]byte) (Extent, error) {
	ss := int64(dev.SectorSize())
	oldBackup := backupHeaderLBA(dev)
	// Repair points the backup header at the disk's last sector and the last usable LBA
	// just before the backup array, exactly as `sgdisk -e` relocates it.
	if err := t.Repair(uint64(dev.Size())); err != nil {
		return Extent{}, fmt.Errorf("relocate GPT backup header: %w", err)
	}
	var lastEnd int64 // first byte after the image's partitions
	used := map[int]bool{}
	for _, p := range t.Partitions {
		used[p.Index] = true
		lastEnd = max(lastEnd, int64(p.End+1)*ss)
	}
	lastUsable := int64(t.LastDataSector()+1) * ss
	start := alignDown(lastUsable-cidataSize, align)
	if start < max(lastEnd, imageSize) {
		return Extent{}, fmt.Errorf("add CIDATA: %w: image ends at %d, disk has %d usable bytes, CIDATA needs %d more", ErrDiskTooSmall, max(lastEnd, imageSize), lastUsable, cidataSize)
	}
	index := 1
	for used[index] {
		index++
	}
	t.Partitions = append(t.Partitions, &gpt.Partition{
		Index: index,
		Start: uint64(start / ss),
		End:   uint64((start+cidataSize)/ss - 1),
		Type:  gpt.MicrosoftBasicData,
		Name:  CIDATALabel,
		GUID:  partitionGUID(),
	})
	if err := t.Write(dev.File(), dev.Size()); err != nil {
		return Extent{}, fmt.Errorf("write GPT with CIDATA: %w", err)
	}
	// The image's own backup header now sits in the middle of the disk; a stale
	// "EFI PART" there would confuse a partitioner that scans for one.
	if oldBackup > 0 && oldBackup*ss < dev.Size()-ss && oldBackup*ss >= lastEnd {
		if _, err := dev.WriteAt(make([]byte, ss), oldBackup*ss); err != nil {
			return Extent{}, fmt.Errorf("erase old GPT backup header at LBA %d: %w", oldBackup, err)
		}
	}
	ext := Extent{Offset: start, Length: cidataSize}
	return ext, writeCIDATAFS(dev, st, ext, files)
}

// backupHeaderLBA reads the alternate-LBA field of the primary GPT header: where the
// image put its backup header.
func backupHeaderLBA(dev *Device) int64 {
	hdr := make([]byte, dev.SectorSize())
	if _, err := dev.ReadAt(hdr, int64(dev.SectorSize())); err != nil {
		return 0
	}
	var lba int64
	for i := 7; i >= 0; i-- {
		lba = lba<<8 | int64(hdr[32+i])
	}
	return lba
}

func addCIDATAMBR(dev *Device, st backend.Storage, t *mbr.Table, imageSize int64, files map[string][]byte) (Extent, error) {
	ss := int64(dev.SectorSize())
	var lastEnd int64
	free := -1
	for i, p := range t.Partitions {
		if p == nil || p.Type == mbr.Empty {
			if free < 0 {
				free = i
			}
			continue
		}
		lastEnd = max(lastEnd, (int64(p.Start)+int64(p.Size))*ss)
	}
	if len(t.Partitions) < 4 && free < 0 {
		free = len(t.Partitions)
	}
	if free < 0 {
		return Extent{}, fmt.Errorf("add CIDATA: all four MBR primary partitions are in use")
	}
	// MBR addresses at most 2^32 sectors: on a larger disk CIDATA ends at that limit.
	end := min(dev.Size(), int64(1<<32)*ss)
	start := alignDown(end-cidataSize, align)
	if start < max(lastEnd, imageSize) {
		return Extent{}, fmt.Errorf("add CIDATA: %w: image ends at %d, disk is %d bytes, CIDATA needs %d more", ErrDiskTooSmall, max(lastEnd, imageSize), dev.Size(), cidataSize)
	}
	p := &mbr.Partition{Index: free + 1, Type: mbr.Fat16bLBA, Start: uint32(start / ss), Size: uint32(cidataSize / ss)}
	for len(t.Partitions) <= free {
		t.Partitions = append(t.Partitions, &mbr.Partition{Index: len(t.Partitions) + 1, Type: mbr.Empty})
	}
	t.Partitions[free] = p
	if err := t.Write(dev.File(), dev.Size()); err != nil {
		return Extent{}, fmt.Errorf("write MBR with CIDATA: %w", err)
	}
	ext := Extent{Offset: start, Length: cidataSize}
	return ext, writeCIDATAFS(dev, st, ext, files)
}

// writeCIDATAFS makes the FAT filesystem in ext and writes files at its root, in name
// order so that two installs of the same node produce the same directory.
func writeCIDATAFS(dev *Device, st backend.Storage, ext Extent, files map[string][]byte) error {
	fs, err := fat16.Create(st, ext.Length, ext.Offset, int64(dev.SectorSize()), CIDATALabel, false)
	if err != nil {
		return fmt.Errorf("create CIDATA filesystem: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("create CIDATA/%s: %w", name, err)
		}
		if _, err := f.Write(files[name]); err != nil {
			f.Close()
			return fmt.Errorf("write CIDATA/%s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close CIDATA/%s: %w", name, err)
		}
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("sync CIDATA: %w", err)
	}
	return nil
}

func alignDown(v, a int64) int64 { return v / a * a }

// partitionGUID is a random (version 4) GUID for the CIDATA partition. It only has to
// differ from other partitions' GUIDs, not be secret, so it comes from math/rand/v2:
// uuid.NewString reads crypto/rand, which on a machine without an RNG device waits
// for the kernel's CRNG, and the installer agent must never wait on entropy.
func partitionGUID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	u := uuid.UUID(b)
	u[6] = u[6]&0x0f | 0x40 // version 4 (RFC 9562 section 5.4)
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}
