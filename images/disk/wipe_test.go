package disk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

const gib = 1 << 30

func TestPlanWipe_CoversSignatureAreasOfTheDiskAndEveryPartition(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		parts   []disk.Extent
		opts    disk.WipeOptions
		want    []disk.Extent
		overwrt bool
	}{{
		name: "blank small disk: both ends, which overlap into one",
		size: 1536 * 1024,
		want: []disk.Extent{{Offset: 0, Length: 1536 * 1024}},
	}, {
		name: "blank 1 GiB disk: both ends, btrfs mirror at 64 MiB, ext4 backups",
		size: gib,
		want: []disk.Extent{
			{Offset: 0, Length: mib},
			{Offset: 8193 * 1024, Length: 1024},
			{Offset: 64 * mib, Length: 4096},
			{Offset: 128 * mib, Length: 4096},
			{Offset: gib - mib, Length: mib},
		},
	}, {
		name:  "partitioned disk: each partition's ends too, merged with the disk's",
		size:  256 * mib,
		parts: []disk.Extent{{Offset: mib, Length: 63 * mib}, {Offset: 100 * mib, Length: 8 * mib}},
		opts:  disk.WipeOptions{Overwrite: true},
		want: []disk.Extent{
			{Offset: 0, Length: 2 * mib},            // disk head + partition 1 head
			{Offset: 8193 * 1024, Length: 1024},     // disk's ext4 backup (1 KiB blocks)
			{Offset: mib + 8193*1024, Length: 1024}, // partition 1's
			{Offset: 63 * mib, Length: mib},         // partition 1 tail
			{Offset: 64 * mib, Length: 4096},        // disk's btrfs mirror
			{Offset: 100 * mib, Length: mib},        // partition 2 head (too small for backup superblocks)
			{Offset: 107 * mib, Length: mib},        // partition 2 tail
			{Offset: 128 * mib, Length: 4096},       // disk's ext4 backup (4 KiB blocks)
			{Offset: 256*mib - mib, Length: mib},    // disk tail
		},
		overwrt: true,
	}, {
		name:  "a partition entry that runs past the disk is clipped",
		size:  16 * mib,
		parts: []disk.Extent{{Offset: 8 * mib, Length: gib}},
		want: []disk.Extent{
			{Offset: 0, Length: mib},
			{Offset: 8 * mib, Length: 9*mib - 8*mib},
			{Offset: 15 * mib, Length: mib},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := disk.PlanWipe(tt.size, tt.parts, tt.opts)
			var got []disk.Extent
			for _, r := range plan.Regions {
				got = append(got, r.Extent)
				if r.Why == "" {
					t.Errorf("region %+v has no reason", r)
				}
			}
			if !equalExtents(mergeWant(tt.want), got) {
				t.Errorf("regions:\n got %v\nwant %v", got, mergeWant(tt.want))
			}
			if plan.Overwrite != tt.overwrt || plan.Size != tt.size {
				t.Errorf("plan size %d overwrite %v, want %d %v", plan.Size, plan.Overwrite, tt.size, tt.overwrt)
			}
		})
	}
}

// mergeWant sorts and merges the expected extents the same way the plan must, so the
// table can list them by why they are there.
func mergeWant(in []disk.Extent) []disk.Extent {
	out := append([]disk.Extent(nil), in...)
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(out); i++ {
			for j := 0; j < len(out); j++ {
				if i == j {
					continue
				}
				a, b := out[i], out[j]
				if b.Offset >= a.Offset && b.Offset <= a.End() {
					out[i].Length = max(a.End(), b.End()) - a.Offset
					out = append(out[:j], out[j+1:]...)
					changed = true
					break
				}
			}
			if changed {
				break
			}
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Offset < out[i].Offset {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func equalExtents(a, b []disk.Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWipe_LeavesNoPartitionTableNoCIDATAAndZerosEveryPlannedByte(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		name := map[bool]string{false: "signatures", true: "full overwrite"}[overwrite]
		t.Run(name, func(t *testing.T) {
			d := installed(t, disktest.GPTImage, 64*mib, 256*mib)
			if _, err := disk.AddCIDATA(d, 64*mib, nocloudFiles); err != nil {
				t.Fatal(err)
			}
			parts := disk.ReadPartitions(d)
			if len(parts) != 2 {
				t.Fatalf("installed disk has partitions %v, want 2", parts)
			}
			plan := disk.PlanWipe(d.Size(), parts, disk.WipeOptions{Overwrite: overwrite})
			// A stand-in that cannot discard, so the zeroing alone is what is checked.
			var reported int64
			rep, err := disk.Wipe(context.Background(), noDiscard{d}, plan, func(done, total int64) { reported = total })
			if err != nil {
				t.Fatalf("Wipe: %v", err)
			}
			if rep.Discarded || rep.Zeroed != reported {
				t.Errorf("report %+v, progress total %d", rep, reported)
			}
			if got := disk.ReadPartitions(d); len(got) != 0 {
				t.Errorf("partitions after wipe: %v", got)
			}
			for _, r := range plan.Regions {
				if !bytes.Equal(readDisk(t, d, r.Offset, r.Length), make([]byte, r.Length)) {
					t.Errorf("region %+v (%s) not zeroed", r.Extent, r.Why)
				}
			}
			if _, err := exec.LookPath("wipefs"); err == nil {
				// util-linux's own signature scan of the whole disk and each old partition.
				for _, e := range append([]disk.Extent{{Offset: 0, Length: d.Size()}}, parts...) {
					out, err := exec.Command("blkid", "-p", "-o", "export", "-O", fmt.Sprint(e.Offset), "--size", fmt.Sprint(e.Length), d.Name()).CombinedOutput()
					if len(bytes.TrimSpace(out)) != 0 {
						t.Errorf("blkid finds a signature at %+v after the wipe (%v):\n%s", e, err, out)
					}
				}
				if out, err := exec.Command("wipefs", "--no-act", d.Name()).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
					t.Errorf("wipefs finds signatures after the wipe (%v):\n%s", err, out)
				}
			} else {
				t.Log("util-linux (wipefs, blkid) not installed: the cross-check with it is skipped")
			}
			// The NoCloud files sit in CIDATA's first MiB (right after its FATs and
			// root directory), so even the signature wipe takes the join token with it.
			if bytes.Contains(readDisk(t, d, 0, d.Size()), []byte("K10secret")) {
				t.Errorf("join token still on the disk after the %s wipe", name)
			}
		})
	}
}

func TestWipe_DiscardsWhereTheDeviceCan(t *testing.T) {
	d := installed(t, disktest.GPTImage, 64*mib, 128*mib)
	rep, err := disk.Wipe(context.Background(), d, disk.PlanWipe(d.Size(), disk.ReadPartitions(d), disk.WipeOptions{}), nil)
	if err != nil {
		t.Fatalf("Wipe: %v", err)
	}
	if !rep.Discarded {
		t.Fatal("a sparse file (hole punching) was not discarded")
	}
	if !bytes.Equal(readDisk(t, d, 0, d.Size()), make([]byte, d.Size())) {
		t.Error("discarded sparse file does not read back as zeros")
	}
}

func TestWipe_WriteErrorFails(t *testing.T) {
	d := installed(t, disktest.GPTImage, 16*mib, 32*mib)
	ro, err := os.Open(d.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = disk.Wipe(context.Background(), readOnly{ro}, disk.PlanWipe(32*mib, nil, disk.WipeOptions{}), nil)
	if err == nil {
		t.Fatal("Wipe of a read-only file succeeded")
	}
}

type noDiscard struct{ *disk.Device }

func (noDiscard) Discard(int64, int64) error { return disk.ErrDiscardUnsupported }

type readOnly struct{ *os.File }

func (readOnly) Discard(int64, int64) error { return disk.ErrDiscardUnsupported }

func TestListDisks_SkipsRemovableAndVirtualDevicesInKernelOrder(t *testing.T) {
	sys := t.TempDir()
	devs := []struct {
		name      string
		removable string
		size      string
	}{
		{"sdaa", "0", "2048"},
		{"vdb", "0", "2048"},
		{"sdb", "0", "4096"},
		{"sr0", "1", "2048"},
		{"loop0", "0", "2048"},
		{"zram0", "0", "2048"},
		{"sdc", "1", "2048"}, // USB stick
		{"sdd", "0", "0"},    // card reader without a card
		{"nvme0n1", "0", "8192"},
	}
	for _, d := range devs {
		dir := filepath.Join(sys, d.name)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "removable"), []byte(d.removable+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "size"), []byte(d.size+"\n"), 0o644)
	}
	got, err := disk.ListDisks(sys, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	want := []disk.BlockDevice{
		{Name: "sdb", Path: "/dev/sdb", Size: 4096 * 512},
		{Name: "vdb", Path: "/dev/vdb", Size: 2048 * 512},
		{Name: "sdaa", Path: "/dev/sdaa", Size: 2048 * 512},
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 8192 * 512},
	}
	if len(got) != len(want) {
		t.Fatalf("ListDisks = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disk %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestListDisks_MissingSysfsIsAnError(t *testing.T) {
	if _, err := disk.ListDisks(filepath.Join(t.TempDir(), "nope"), "/dev"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}
