package disk_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/images/disk/disktest"
)

func TestVerifyWiped_FindsWhatAWipeLeftAtEitherEnd(t *testing.T) {
	tests := []struct {
		name      string
		wipe      bool
		poke      func(size int64) int64 // offset of a byte written after the wipe; -1 none
		wantBlank bool
		wantFound string
	}{
		{"installed, not wiped", false, nil, false, "partition table"},
		{"wiped", true, nil, true, ""},
		{"wiped, then a byte in the first MiB", true, func(int64) int64 { return 4096 }, false, "first MiB at offset 4096"},
		{"wiped, then a byte in the last MiB", true, func(size int64) int64 { return size - 100 }, false, "last MiB"},
		{"wiped, a byte in the middle is not a signature area", true, func(size int64) int64 { return size / 2 }, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := installed(t, disktest.GPTImage, 16*mib, 64*mib)
			if tt.wipe {
				plan := disk.PlanWipe(d.Size(), disk.ReadPartitions(d), disk.WipeOptions{})
				if _, err := disk.Wipe(context.Background(), noDiscard{d}, plan, nil); err != nil {
					t.Fatal(err)
				}
			}
			if tt.poke != nil {
				if _, err := d.WriteAt([]byte{0x53}, tt.poke(d.Size())); err != nil {
					t.Fatal(err)
				}
			}
			got, err := disk.VerifyWiped(d)
			if err != nil {
				t.Fatal(err)
			}
			if got.Blank != tt.wantBlank || !strings.Contains(got.Found, tt.wantFound) {
				t.Errorf("VerifyWiped = %+v, want blank=%v found containing %q", got, tt.wantBlank, tt.wantFound)
			}
		})
	}
}
