package disk

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// WipeOptions are the choices a wipe task makes.
type WipeOptions struct {
	// Overwrite writes zeros over the whole disk, after the signature wipe.
	Overwrite bool
}

// Region is a byte range the wipe zeroes, and why.
type Region struct {
	Extent
	Why string
}

// WipePlan is everything a wipe of one disk will do, computed before any byte changes.
type WipePlan struct {
	Size int64
	// Regions are zeroed in order; they are sorted, merged and inside the disk.
	Regions []Region
	// Overwrite zeroes the whole disk after the regions.
	Overwrite bool
}

// Signature areas, as offsets from the start (or, negative, the end) of a disk or
// partition. The first and last MiB cover the MBR, both GPT headers and arrays, md
// superblocks 0.90/1.0 (end) and 1.1/1.2 (start), LVM, ext2/3/4 and XFS primary
// superblocks, btrfs's primary superblock at 64 KiB and ZFS's four labels.
const edgeSize = 1 << 20

// secondarySignatures are copies that tools recover from when the primary is gone.
var secondarySignatures = []struct {
	offset, length int64
	why            string
}{
	{64 << 20, 4096, "btrfs superblock mirror 1"},
	{256 << 30, 4096, "btrfs superblock mirror 2"},
	// ext4 with 4 KiB blocks keeps its first backup superblock at the start of block
	// group 1 (block 32768); e2fsck -b finds it there.
	{32768 * 4096, 4096, "ext4 backup superblock (4 KiB blocks)"},
	{8193 * 1024, 1024, "ext4 backup superblock (1 KiB blocks)"},
}

// PlanWipe plans the wipe of a disk of size bytes whose partitions (as found by
// ReadPartitions, possibly none) are parts: the signature areas at both ends and the
// secondary superblocks of the disk and of every partition.
func PlanWipe(size int64, parts []Extent, opts WipeOptions) WipePlan {
	var regions []Region
	add := func(within Extent, what string) {
		for _, r := range []Region{
			{Extent{within.Offset, edgeSize}, what + ": first MiB"},
			{Extent{within.End() - edgeSize, edgeSize}, what + ": last MiB"},
		} {
			regions = append(regions, clip(r, within))
		}
		for _, s := range secondarySignatures {
			if s.offset+s.length <= within.Length {
				regions = append(regions, Region{Extent{within.Offset + s.offset, s.length}, what + ": " + s.why})
			}
		}
	}
	disk := Extent{0, size}
	add(disk, "disk")
	for i, p := range parts {
		p = clip(Region{Extent: p}, disk).Extent
		if p.Length > 0 {
			add(p, fmt.Sprintf("partition %d", i+1))
		}
	}
	return WipePlan{Size: size, Regions: merge(regions), Overwrite: opts.Overwrite}
}

func clip(r Region, within Extent) Region {
	start := max(r.Offset, within.Offset)
	end := min(r.End(), within.End())
	if end < start {
		end = start
	}
	return Region{Extent{start, end - start}, r.Why}
}

// merge sorts regions and joins the ones that overlap or touch, so every byte is
// written once.
func merge(regions []Region) []Region {
	sort.Slice(regions, func(i, j int) bool { return regions[i].Offset < regions[j].Offset })
	var out []Region
	for _, r := range regions {
		if r.Length <= 0 {
			continue
		}
		if n := len(out); n > 0 && r.Offset <= out[n-1].End() {
			last := &out[n-1]
			if r.End() > last.End() {
				last.Length = r.End() - last.Offset
			}
			if last.Why != r.Why {
				last.Why += "; " + r.Why
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// ReadPartitions returns the partitions of dev's GPT (primary, or the backup when the
// primary is damaged) or MBR; none when it has neither.
func ReadPartitions(dev *Device) []Extent {
	st := file.New(dev.File(), true)
	ss := dev.SectorSize()
	var out []Extent
	if t, err := gpt.Read(st, ss, ss); err == nil {
		for _, p := range t.Partitions {
			out = append(out, Extent{int64(p.Start) * int64(ss), int64(p.End-p.Start+1) * int64(ss)})
		}
		return out
	}
	if t, err := mbr.Read(st, ss, ss); err == nil {
		for _, p := range t.Partitions {
			if p != nil && p.Type != mbr.Empty && p.Size > 0 {
				out = append(out, Extent{int64(p.Start) * int64(ss), int64(p.Size) * int64(ss)})
			}
		}
	}
	return out
}

// WipeTarget is what Wipe writes to; *Device is one.
type WipeTarget interface {
	WriteAt(p []byte, off int64) (int, error)
	Discard(off, length int64) error
	Sync() error
}

// WipeReport says what a wipe did; Discarded is false when the device could not discard.
type WipeReport struct {
	Discarded bool
	Zeroed    int64
}

// Wipe carries out plan on dev: discard of the whole disk where the device supports
// it, then zeros over every planned region (a discard need not make reads return zeros,
// so it never replaces them), then the full overwrite if planned, then a cache flush.
// report, if not nil, gets (bytes done, bytes to do) of the zeroing.
func Wipe(ctx context.Context, dev WipeTarget, plan WipePlan, report func(done, total int64)) (WipeReport, error) {
	var rep WipeReport
	switch err := dev.Discard(0, plan.Size); {
	case err == nil:
		rep.Discarded = true
	case errors.Is(err, ErrDiscardUnsupported):
	default:
		return rep, fmt.Errorf("wipe: %w", err)
	}
	regions := plan.Regions
	if plan.Overwrite {
		regions = append(append([]Region(nil), regions...), Region{Extent{0, plan.Size}, "full overwrite"})
	}
	var total int64
	for _, r := range regions {
		total += r.Length
	}
	zero := make([]byte, chunkSize)
	for _, r := range regions {
		for off := r.Offset; off < r.End(); {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("wipe: %w", err)
			}
			n := min(int64(len(zero)), r.End()-off)
			w, err := dev.WriteAt(zero[:n], off)
			if err == nil && int64(w) < n {
				err = fmt.Errorf("short write: %d of %d bytes", w, n)
			}
			if err != nil {
				return rep, fmt.Errorf("wipe %s at offset %d: %w", r.Why, off, err)
			}
			off += n
			rep.Zeroed += n
			if report != nil {
				report(rep.Zeroed, total)
			}
		}
	}
	if err := dev.Sync(); err != nil {
		return rep, fmt.Errorf("wipe: flush: %w", err)
	}
	return rep, nil
}
