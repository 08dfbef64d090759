package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

// DemoImageSpec says what goes into the demo image (BuildDemoImage).
type DemoImageSpec struct {
	// Init is the static demo OS program (cmd/bootyard-demo-os); it becomes /init.
	Init string
	// Kernel is Debian's signed kernel (FetchKernel), which shim lets GRUB start under
	// Secure Boot; its efivarfs module goes into the initramfs.
	Kernel Kernel
	// Shim is the Microsoft-signed shim (shim-signed's shimx64.efi.signed) and GRUB the
	// Debian-signed disk GRUB (grub-efi-amd64-signed's grubx64.efi.signed).
	Shim, GRUB string
}

// DemoImageSize is the demo image's size: the kernel (about 8 MB), its initramfs (the
// demo OS, about 1 MB), shim and GRUB, with room, in one ESP.
const DemoImageSize = 40 << 20

// demoGRUBConfig is read by Debian's signed grubx64.efi from its embedded prefix,
// /EFI/debian on the partition it was started from (strings on the image show it).
// GRUB under Secure Boot has shim verify the kernel, which Debian signs.
const demoGRUBConfig = `set timeout=0
echo 'Bootyard demo image: starting its kernel'
linux /vmlinuz console=tty0 console=ttyS0,115200 panic=-1
initrd /initramfs.gz
boot
`

// BuildDemoImage writes the demo image to path: a GPT disk with one EFI System
// Partition holding the removable-media boot path a UEFI disk may carry —
// \EFI\BOOT\BOOTX64.EFI (shim) and grubx64.efi beside it, which shim starts — GRUB's
// config in \EFI\debian, Debian's kernel and an initramfs whose /init is the demo OS. It
// boots with Secure Boot on or off; nothing in it is signed by us. The FAT file system
// is made with mkfs.vfat and mtools (no loop mount), the GPT in Go.
func BuildDemoImage(ctx context.Context, spec DemoImageSpec, path string) error {
	for _, tool := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("demo image: %s not found (Debian's dosfstools and mtools): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "bootyard-demo-image-")
	if err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	defer os.RemoveAll(dir)
	initramfs := filepath.Join(dir, "initramfs.gz")
	if err := writeDemoInitramfs(ctx, initramfs, spec); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	cfg := filepath.Join(dir, "grub.cfg")
	if err := os.WriteFile(cfg, []byte(demoGRUBConfig), 0o644); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}

	// The ESP fills the disk from 1 MiB to 1 MiB before its end, where the backup GPT
	// lives (and from where the installer moves it when the disk is larger).
	const espStart, espSize = 1 << 20, DemoImageSize - 2<<20
	esp := filepath.Join(dir, "esp.img")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	steps := [][]string{
		{"mkfs.vfat", "-n", "DEMO-ESP", "-C", esp, strconv.Itoa(espSize >> 10)},
		{"mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"},
		{"mcopy", "-i", esp, spec.Shim, "::/EFI/BOOT/BOOTX64.EFI"},
		// shim starts grubx64.efi from its own directory.
		{"mcopy", "-i", esp, spec.GRUB, "::/EFI/BOOT/grubx64.efi"},
		{"mcopy", "-i", esp, cfg, "::/EFI/debian/grub.cfg"},
		{"mcopy", "-i", esp, spec.Kernel.Vmlinuz, "::/vmlinuz"},
		{"mcopy", "-i", esp, initramfs, "::/initramfs.gz"},
	}
	for _, s := range steps {
		if b, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("demo image: %s: %w: %s", s[0], err, bytes.TrimSpace(b))
		}
	}
	return writeESPDisk(path, esp, espStart, espSize)
}

// writeDemoInitramfs writes the demo OS's initramfs: its /init and the efivarfs module
// (with its modules.dep), through the agent's initramfs builder.
func writeDemoInitramfs(ctx context.Context, path string, spec DemoImageSpec) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := BuildInitramfs(ctx, f, InitramfsSpec{Agent: spec.Init, Kernel: spec.Kernel, Modules: []string{"efivarfs"}}); err != nil {
		return err
	}
	return f.Close()
}

// writeESPDisk writes a DemoImageSize GPT disk to path whose one partition, the EFI
// System Partition at espStart, holds the FAT image esp. The disk is written beside
// path and renamed, so a server never lists half an image.
func writeESPDisk(path, esp string, espStart, espSize int64) error {
	src, err := os.Open(esp)
	if err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	defer src.Close()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	t := &gpt.Table{
		LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{
			Index: 1, Start: uint64(espStart / 512), End: uint64((espStart+espSize)/512 - 1),
			Type: gpt.EFISystemPartition, Name: "EFI System", GUID: uuid.NewString(),
		}},
	}
	if err := f.Truncate(DemoImageSize); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	if err := t.Write(f, DemoImageSize); err != nil {
		return fmt.Errorf("demo image: gpt: %w", err)
	}
	if _, err := f.Seek(espStart, io.SeekStart); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	if _, err := io.Copy(f, src); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("demo image: %w", err)
	}
	return nil
}
