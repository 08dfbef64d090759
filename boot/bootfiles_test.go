package boot

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bootyard/bootyard/ipxe"
)

func TestBootFiles_OfferOnlyWhatTheIPXEDirectoryHolds(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  BootFiles
	}{
		{"debian package", []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"},
			BootFiles{BIOS: "undionly.kpxe", EFIx64: "ipxe.efi"}},
		{"with an arm64 build", []string{"undionly.kpxe", "ipxe.efi", "snponly-arm64.efi"},
			BootFiles{BIOS: "undionly.kpxe", EFIx64: "ipxe.efi", EFIARM64: "snponly-arm64.efi"}},
		{"snponly only", []string{"snponly.efi"}, BootFiles{EFIx64: "snponly.efi"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("MZ fake iPXE"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			bins, err := ipxe.OpenBinaries(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := BootFilesFrom(bins); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
