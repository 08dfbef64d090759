package disk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"testing"

	"github.com/bootyard/bootyard/images/disk"
)

// memDisk is a WriterAt over a fixed-size buffer that refuses writes past its end.
type memDisk struct{ b []byte }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, os.ErrInvalid
	}
	return copy(m.b[off:], p), nil
}

// FuzzWriteImage feeds arbitrary served bytes in every format to the writer: it must
// never panic, never write past the disk, and succeed only when the digest matches.
func FuzzWriteImage(f *testing.F) {
	raw := []byte("an image")
	f.Add(raw, uint8(0), true)
	f.Add(encode(f, disk.FormatGzip, raw), uint8(1), true)
	f.Add(encode(f, disk.FormatZstd, raw), uint8(2), true)
	f.Add(encode(f, disk.FormatZstd, bytes.Repeat([]byte{0}, 200000)), uint8(2), true)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, uint8(1), false)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0x58}, uint8(2), false)
	formats := []disk.Format{disk.FormatRaw, disk.FormatGzip, disk.FormatZstd}
	f.Fuzz(func(t *testing.T, served []byte, format uint8, rightSum bool) {
		want := sum([]byte("something else"))
		if rightSum {
			want = sum(served)
		}
		dst := &memDisk{b: make([]byte, 64<<10)}
		res, err := disk.WriteImage(context.Background(), dst, int64(len(dst.b)), bytes.NewReader(served),
			disk.Image{Format: formats[int(format)%len(formats)], SHA256: want, Size: int64(len(served))}, nil)
		if err == nil && (!rightSum || res.SHA256 != want || res.Written > int64(len(dst.b))) {
			t.Fatalf("accepted: %+v, right sum %v", res, rightSum)
		}
	})
}

// FuzzPlanWipe plans wipes of disks of any size with any partition entries (a
// machine's disk holds anything, and ReadPartitions passes entries on as they are):
// every region must lie inside the disk, sorted and apart, and both ends of the disk
// must be covered.
func FuzzPlanWipe(f *testing.F) {
	entry := func(off, length int64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(off))
		return binary.LittleEndian.AppendUint64(b, uint64(length))
	}
	f.Add(uint64(256<<20), append(entry(1<<20, 63<<20), entry(100<<20, 8<<20)...))
	f.Add(uint64(1<<40), entry(1<<20, 1<<40))
	f.Add(uint64(3*512), entry(-5, 1<<62))
	f.Add(uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, size uint64, entries []byte) {
		diskSize := int64(size % (1 << 50))
		var parts []disk.Extent
		for ; len(entries) >= 16; entries = entries[16:] {
			parts = append(parts, disk.Extent{
				Offset: int64(binary.LittleEndian.Uint64(entries)),
				Length: int64(binary.LittleEndian.Uint64(entries[8:])),
			})
		}
		plan := disk.PlanWipe(diskSize, parts, disk.WipeOptions{})
		var prevEnd int64 = -1
		for _, r := range plan.Regions {
			if r.Offset < 0 || r.Length <= 0 || r.End() > diskSize || r.Offset <= prevEnd {
				t.Fatalf("bad region %+v in a %d-byte disk (previous ended at %d)", r, diskSize, prevEnd)
			}
			prevEnd = r.End()
		}
		if diskSize > 0 && (len(plan.Regions) == 0 || plan.Regions[0].Offset != 0 || plan.Regions[len(plan.Regions)-1].End() != diskSize) {
			t.Fatalf("plan %+v does not cover both ends of a %d-byte disk", plan.Regions, diskSize)
		}
	})
}
