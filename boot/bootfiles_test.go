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
		{"the signed chain", []string{"ipxe.efi", "shimx64.efi", "grubx64.efi"}, BootFiles{EFIx64: "ipxe.efi", EFIx64Shim: "shimx64.efi"}},
		{"the signed chain and its HTTP boot disk", []string{"ipxe.efi", "shimx64.efi", "grubx64.efi", "shimx64-httpboot.img"},
			BootFiles{EFIx64: "ipxe.efi", EFIx64Shim: "shimx64.efi", EFIx64ShimHTTP: "shimx64-httpboot.img"}},
		// The disk without shim itself is never offered.
		{"an HTTP boot disk alone", []string{"ipxe.efi", "shimx64-httpboot.img"}, BootFiles{EFIx64: "ipxe.efi"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var named []ipxe.NamedFile
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("MZ fake iPXE"), 0o644); err != nil {
					t.Fatal(err)
				}
				if f == ipxe.ShimName || f == ipxe.GRUBName || f == ipxe.ShimHTTPDiskName {
					named = append(named, ipxe.NamedFile{Name: f, Path: filepath.Join(dir, f)})
				}
			}
			bins, err := ipxe.OpenBinariesWith(dir, named)
			if err != nil {
				t.Fatal(err)
			}
			if got := BootFilesFrom(bins); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
