package main

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/rootdisk"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestInstall_RootDiskHintsChooseTheDiskAndLeaveTheOthersUntouched: three disks, the
// middle one larger in sysfs; hints pick it, and the other two keep every byte.
func TestInstall_RootDiskHintsChooseTheDiskAndLeaveTheOthersUntouched(t *testing.T) {
	tests := []struct {
		name, hints string
		want        int    // index of the disk written, -1 for none
		failure     string // what the failure must say
	}{
		{"size picks the larger disk", "size>=100M", 1, ""},
		{"name picks the last", "name=vdc", 2, ""},
		{"no hint picks the smallest that fits", "", 0, ""},
		{"ambiguous hint fails with both candidates", "size<100M", -1, "more than one disk matches: ("},
		{"no match fails with every candidate", "serial=NOPE", -1, "no disk matches; candidates:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "install", 3, map[string][]byte{"meta-data": []byte("instance-id: x\n")})
			os.WriteFile(filepath.Join(r.in.sysBlock, "vdb", "size"), []byte("262144\n"), 0o644)
			r.api.Task.RootDiskHints = tt.hints
			var before [][32]byte
			for _, d := range r.disks {
				before = append(before, fileSum(t, d))
			}
			err := r.run(t)
			rep := r.api.Report()
			if tt.want < 0 {
				if err == nil || !strings.Contains(err.Error(), tt.failure) {
					t.Fatalf("err = %v, want it to say %q", err, tt.failure)
				}
				if !errors.Is(err, rootdisk.ErrAmbiguous) && !errors.Is(err, rootdisk.ErrNoDisk) {
					t.Errorf("err = %v, want a rootdisk error kind", err)
				}
				if len(rep.Done) != 0 {
					t.Errorf("done reported: %v", rep.Done)
				}
			} else if err != nil {
				t.Fatalf("perform: %v", err)
			}
			for i, d := range r.disks {
				changed := fileSum(t, d) != before[i]
				if changed != (i == tt.want) {
					t.Errorf("%s changed = %v, want %v", d, changed, i == tt.want)
				}
			}
			if tt.want >= 0 && !strings.Contains(r.output.String(), "install disk chosen") {
				t.Errorf("the log does not say which disk was chosen and why:\n%s", r.output)
			}
		})
	}
}
