package ipxe

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// TestBuildShimHTTPDisk_CarriesTheChainWhereTheFirmwareAndShimLookAndSendsGRUBToTFTP reads
// the image back with mtools: shim where the firmware starts a RAM disk
// (\EFI\BOOT\BOOTX64.EFI), GRUB where shim looks for it (beside itself), and the config
// where Debian's network GRUB reads it (/grub/grub.cfg), naming the TFTP server.
func TestBuildShimHTTPDisk_CarriesTheChainWhereTheFirmwareAndShimLookAndSendsGRUBToTFTP(t *testing.T) {
	for _, tool := range []string{"mkfs.vfat", "mcopy", "mtype"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages dosfstools, mtools)", tool)
		}
	}
	dir := t.TempDir()
	shim, grub := filepath.Join(dir, "shimx64.efi.signed"), filepath.Join(dir, "grubnetx64.efi.signed")
	shimBytes, grubBytes := bytes.Repeat([]byte("shim"), 300_000), bytes.Repeat([]byte("grub"), 1_000_000)
	for path, b := range map[string][]byte{shim: shimBytes, grub: grubBytes} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chain := []NamedFile{{Name: ShimName, Path: shim}, {Name: GRUBName, Path: grub}}
	out, err := BuildShimHTTPDisk(context.Background(), chain, netip.MustParseAddr("10.77.0.5"), filepath.Join(dir, "loaders"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(out) != ShimHTTPDiskName || !strings.HasSuffix(out, ".img") {
		t.Errorf("image %s: want %s (the firmware takes a .img URL for a disk)", out, ShimHTTPDiskName)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := exec.Command("mtype", "-i", out, name).Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", name, err)
		}
		return b
	}
	if !bytes.Equal(read("::/EFI/BOOT/BOOTX64.EFI"), shimBytes) {
		t.Error(`\EFI\BOOT\BOOTX64.EFI is not the signed shim`)
	}
	if !bytes.Equal(read("::/EFI/BOOT/grubx64.efi"), grubBytes) {
		t.Error(`\EFI\BOOT\grubx64.efi is not the signed GRUB`)
	}
	cfg := string(read("::/grub/grub.cfg"))
	for _, want := range []string{"net_bootp\n", "set bootyard_mac=\"$net_efinet0_dhcp_mac\"\n", "set root=(tftp,10.77.0.5)\n", "set prefix=($root)/grub\n", "source $prefix/grub.cfg\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if _, err := os.Stat(out + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestBuildShimHTTPDisk_RefusesAnIncompleteChainOrANonIPv4Server(t *testing.T) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "shim")
	if err := os.WriteFile(shim, []byte("shim"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := []NamedFile{{Name: ShimName, Path: shim}, {Name: GRUBName, Path: shim}}
	tests := []struct {
		name  string
		chain []NamedFile
		tftp  netip.Addr
	}{
		{"no GRUB", full[:1], netip.MustParseAddr("10.77.0.5")},
		{"no shim", full[1:], netip.MustParseAddr("10.77.0.5")},
		{"IPv6 server", full, netip.MustParseAddr("fd00::5")},
		{"no server", full, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name)
			if _, err := BuildShimHTTPDisk(context.Background(), tt.chain, tt.tftp, out); !errors.Is(err, node.ErrInvalid) {
				t.Errorf("err = %v, want node.ErrInvalid", err)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written for a refused chain", out)
			}
		})
	}
}
