package ipxe

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// LocalBootLoaderName is the name the UEFI local-boot loader is served under, beside
// the iPXE binaries (/ipxe/NAME over HTTP).
const LocalBootLoaderName = "bootyard-localboot-x64.efi"

// DefaultGRUBDir is where Debian's grub-efi-amd64-bin installs GRUB's x86_64-efi modules.
const DefaultGRUBDir = "/usr/lib/grub/x86_64-efi"

// localBootConfig is the loader's grub.cfg: it searches the disks for the installed
// system's EFI loader and chainloads it.
//
//go:embed loader/localboot.cfg
var localBootConfig []byte

// localBootModules are built into the loader, so it needs nothing from a disk or the
// network: memdisk and tar hold its grub.cfg, normal runs it (for, if), search and
// chain find and start the installed loader on a GPT or MBR disk's FAT ESP.
var localBootModules = []string{"normal", "memdisk", "tar", "search", "search_fs_file", "chain",
	"part_gpt", "part_msdos", "fat", "echo", "test", "sleep", "configfile"}

// BuildLocalBootLoader writes the UEFI local-boot loader into dir (created if needed) and
// returns its path. It is a GRUB image made with grub-mkimage from grubDir (Debian's
// grub-efi-amd64-bin), with its grub.cfg in a built-in memdisk.
//
// Why a loader and not iPXE's "exit": with the network first in the boot order, "exit"
// hands the machine back to the firmware, and what happens next is the firmware's
// choice. OVMF (EDK2) shows its boot menu when a boot option returns success, others
// retry the network or stop at "No more network devices"; and the firmware's disk entry
// exists only if someone wrote one or the disk carries the removable-media path. A
// loader that chainloads the disk's own EFI loader boots the same way on every firmware
// that can run an EFI image from iPXE, leaves the boot order alone (the network stays
// first, so Bootyard keeps deciding every boot), and is the shape MAAS uses.
func BuildLocalBootLoader(ctx context.Context, grubDir, dir string) (string, error) {
	if grubDir == "" {
		grubDir = DefaultGRUBDir
	}
	if _, err := os.Stat(filepath.Join(grubDir, "chain.mod")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("build UEFI local-boot loader: GRUB's x86_64-efi modules are not in %s (install Debian's grub-efi-amd64-bin): %w", grubDir, err)
		}
		return "", fmt.Errorf("build UEFI local-boot loader: %w", err)
	}
	mkimage, err := exec.LookPath("grub-mkimage")
	if err != nil {
		return "", fmt.Errorf("build UEFI local-boot loader: grub-mkimage not found (Debian's grub-common): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build UEFI local-boot loader: %w", err)
	}
	memdisk, err := os.CreateTemp(dir, ".memdisk-*.tar")
	if err != nil {
		return "", fmt.Errorf("build UEFI local-boot loader: %w", err)
	}
	defer os.Remove(memdisk.Name())
	if _, err := memdisk.Write(configTar(localBootConfig)); err != nil {
		memdisk.Close()
		return "", fmt.Errorf("build UEFI local-boot loader: write memdisk: %w", err)
	}
	if err := memdisk.Close(); err != nil {
		return "", fmt.Errorf("build UEFI local-boot loader: write memdisk: %w", err)
	}
	out := filepath.Join(dir, LocalBootLoaderName)
	tmp := out + ".tmp"
	// Written beside and renamed, so a machine fetching the loader while Bootyard
	// restarts never gets half a file.
	// The prefix names a directory: with a bare "(memdisk)" GRUB takes the path from the
	// device it was loaded from (iPXE's), finds no grub.cfg and stops at its prompt.
	args := append([]string{"-O", "x86_64-efi", "-d", grubDir, "-o", tmp, "-m", memdisk.Name(), "-p", "(memdisk)/boot/grub"}, localBootModules...)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, mkimage, args...).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build UEFI local-boot loader: grub-mkimage: %w: %s", err, bytes.TrimSpace(b))
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build UEFI local-boot loader: %w", err)
	}
	return out, nil
}

// configTar is a tar archive holding boot/grub/grub.cfg: GRUB's memdisk is a tar, and
// with the prefix (memdisk)/boot/grub "normal" reads grub.cfg from it.
func configTar(cfg []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail.
	for _, d := range []string{"boot/", "boot/grub/"} {
		_ = tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatUSTAR})
	}
	_ = tw.WriteHeader(&tar.Header{Name: "boot/grub/grub.cfg", Mode: 0o644, Size: int64(len(cfg)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	_, _ = tw.Write(cfg)
	_ = tw.Close()
	return buf.Bytes()
}

// LocalBootConfig is the local-boot loader's GRUB script, for the Secure Boot chain's
// GRUB, which runs the same search from its per-machine config. The caller must not
// modify it.
func LocalBootConfig() []byte { return localBootConfig }
