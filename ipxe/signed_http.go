package ipxe

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bootyard/bootyard/node"
)

// ShimHTTPDiskName is what DHCP offers x86-64 UEFI HTTP boot clients whose loader is shim:
// a small FAT disk image holding the signed chain. Debian's signed GRUB has no HTTP (its
// image carries no http module and lockdown loads none), and given shim's URL it takes
// (http,SERVER:PORT)/grub as its prefix and stops at its prompt. The firmware loads a URL
// ending in .img into a RAM disk (UEFI 2.7 HTTP boot; EDK2's HttpBootDxe, by the
// extension when the type is not one of its own) and starts its \EFI\BOOT\BOOTX64.EFI:
// shim, which verifies and starts the GRUB beside it; that GRUB reads /grub/grub.cfg
// from the RAM disk, which asks for an address (net_bootp) and goes on over TFTP from
// Bootyard exactly as under PXE. Everything that runs is still signed by Microsoft or
// Debian; the image is only a FAT file system around them.
const ShimHTTPDiskName = "shimx64-httpboot.img"

// shimHTTPDiskKiB is the image's size: shim (1 MB) and the network GRUB (4 MB) with room.
const shimHTTPDiskKiB = 8 << 10

// shimHTTPDiskConfig is the RAM disk's /grub/grub.cfg. net_bootp configures every card
// but names no default interface, so net_default_mac stays empty: the main config asks
// for the per-MAC config by bootyard_mac, the first card's MAC (efinet0, whose address
// net_bootp calls efinet0:dhcp), so a machine with several NICs needs them all on its
// node.
const shimHTTPDiskConfig = `# Bootyard: GRUB started from the UEFI HTTP boot RAM disk. Its network is not
# configured (it booted from a disk): ask DHCP, then read Bootyard's config over TFTP.
echo 'Bootyard: UEFI HTTP boot, asking DHCP for an address'
net_bootp
set bootyard_mac="$net_efinet0_dhcp_mac"
set root=(tftp,%s)
set prefix=($root)/grub
source $prefix/grub.cfg
`

// BuildShimHTTPDisk writes dir/ShimHTTPDiskName from chain (SignedChain's files): shim
// as \EFI\BOOT\BOOTX64.EFI, GRUB beside it, and the config that sends GRUB to the TFTP
// server at tftp. Made with mkfs.vfat and mtools (Debian's dosfstools and mtools).
func BuildShimHTTPDisk(ctx context.Context, chain []NamedFile, tftp netip.Addr, dir string) (string, error) {
	var shim, grub string
	for _, f := range chain {
		switch f.Name {
		case ShimName:
			shim = f.Path
		case GRUBName:
			grub = f.Path
		}
	}
	if shim == "" || grub == "" {
		return "", fmt.Errorf("build the HTTP boot disk: the chain lacks %s or %s: %w", ShimName, GRUBName, node.ErrInvalid)
	}
	if !tftp.Is4() {
		return "", fmt.Errorf("build the HTTP boot disk: TFTP server %q: want an IPv4 address: %w", tftp, node.ErrInvalid)
	}
	for _, tool := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("build the HTTP boot disk: %s not found (Debian's dosfstools and mtools): %w", tool, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build the HTTP boot disk: %w", err)
	}
	cfg, err := os.CreateTemp(dir, ".httpboot-*.cfg")
	if err != nil {
		return "", fmt.Errorf("build the HTTP boot disk: %w", err)
	}
	defer os.Remove(cfg.Name())
	if _, err := fmt.Fprintf(cfg, shimHTTPDiskConfig, tftp); err != nil {
		cfg.Close()
		return "", fmt.Errorf("build the HTTP boot disk: %w", err)
	}
	if err := cfg.Close(); err != nil {
		return "", fmt.Errorf("build the HTTP boot disk: %w", err)
	}
	out := filepath.Join(dir, ShimHTTPDiskName)
	// Written beside and renamed, so a machine fetching the image while Bootyard restarts
	// never gets half a file.
	tmp := out + ".tmp"
	os.Remove(tmp) // mkfs.vfat -C refuses an existing file
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	steps := [][]string{
		{"mkfs.vfat", "-C", tmp, strconv.Itoa(shimHTTPDiskKiB)},
		{"mmd", "-i", tmp, "::/EFI", "::/EFI/BOOT", "::/grub"},
		{"mcopy", "-i", tmp, shim, "::/EFI/BOOT/BOOTX64.EFI"},
		// shim loads grubx64.efi from its own directory.
		{"mcopy", "-i", tmp, grub, "::/EFI/BOOT/" + GRUBName},
		// Debian's network GRUB has the prefix /grub on the device it started from.
		{"mcopy", "-i", tmp, cfg.Name(), "::/grub/grub.cfg"},
	}
	for _, s := range steps {
		if b, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("build the HTTP boot disk: %s: %w: %s", s[0], err, bytes.TrimSpace(b))
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build the HTTP boot disk: %w", err)
	}
	return out, nil
}
