package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/images"
)

// The demo OS's line on the serial console (cmd/bootyard-demo-os).
const demoBanner = "Bootyard demo OS booted; Secure Boot: "

// TestDemoImage_BootsUnderSecureBootAndUnsignedLoaderIsRefused builds the demo image as
// `make demo` does and boots it as the installed machine's disk (the install writes it
// byte for byte) on Debian's OVMF under TCG, without any network. With Microsoft's keys
// enrolled and Secure Boot enforced, the firmware starts shim, shim Debian's GRUB, GRUB
// Debian's kernel, and the demo OS reads the firmware's SecureBoot variable: on. On
// plain OVMF the same image says off. The control: the same image with unsigned
// ipxe.efi as \EFI\BOOT\BOOTX64.EFI is refused by the firmware and never reaches the
// demo OS, and so is the image with a tampered kernel, which GRUB refuses through shim.
func TestDemoImage_BootsUnderSecureBootAndUnsignedLoaderIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU under TCG: skipped with -short")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.vfat", "mcopy", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, p := range []string{ovmfCode, ovmfSecureBootCode, ovmfSecureBootVars, signedShim, signedGRUB, "/usr/lib/ipxe/ipxe.efi"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (Debian packages ovmf, shim-signed, grub-efi-amd64-signed, ipxe): %v", p, err)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootyard")
	// demoImageSpec finds the demo OS beside the bootyard binary, as make build puts it.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "bootyard-demo-os"), "./cmd/bootyard-demo-os")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo OS: %v\n%s", err, out)
	}
	ctx := context.Background()
	spec, err := demoImageSpec(ctx, bin, filepath.Join(repo, ".cache", "kernel"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "demo.img")
	if err := images.BuildDemoImage(ctx, spec, img); err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(dir, "unsigned.img")
	copyFile(t, img, unsigned)
	// The ESP starts at 1 MiB: mtools reaches it through the image's offset.
	if out, err := exec.Command("mcopy", "-o", "-i", unsigned+"@@1M", "/usr/lib/ipxe/ipxe.efi", "::/EFI/BOOT/BOOTX64.EFI").CombinedOutput(); err != nil {
		t.Fatalf("put ipxe.efi in the control image: %v\n%s", err, out)
	}
	// A second control one link further down: the kernel with one byte changed, so its
	// signature no longer matches and GRUB (through shim) must refuse it.
	tamperedKernel := filepath.Join(dir, "tampered.img")
	copyFile(t, img, tamperedKernel)
	kernel, err := os.ReadFile(spec.Kernel.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	kernel[len(kernel)/2] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), kernel, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mcopy", "-o", "-i", tamperedKernel+"@@1M", filepath.Join(dir, "vmlinuz"), "::/vmlinuz").CombinedOutput(); err != nil {
		t.Fatalf("put the tampered kernel in the control image: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name       string
		image      string
		secureBoot bool
		want       string   // on the serial console
		also       []string // there too, once want is
	}{
		{"Secure Boot enforced: shim, GRUB and the kernel start, the demo OS says on", img, true, demoBanner + "on",
			// The kernel's own word: the EFI stub saw Secure Boot and locked the kernel down.
			[]string{"Welcome to GRUB", "Secure boot enabled", "Kernel is locked down from EFI Secure Boot"}},
		{"Secure Boot off: the same image boots and the demo OS says off", img, false, demoBanner + "off",
			[]string{"Welcome to GRUB", "Bootyard demo image: starting its kernel"}},
		{"control: unsigned ipxe.efi as BOOTX64.EFI is refused under Secure Boot", unsigned, true, "Access Denied", nil},
		{"control: a tampered kernel is refused by GRUB through shim under Secure Boot", tamperedKernel, true, "bad shim signature",
			[]string{"Welcome to GRUB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serial := bootDisk(t, tc.image, tc.secureBoot, tc.want)
			for _, w := range tc.also {
				if !strings.Contains(serial, w) {
					t.Errorf("serial console lacks %q:\n%s", w, serial)
				}
			}
			if testing.Verbose() {
				t.Logf("serial console (tail):\n%s", tail(serial, 1500))
			}
			if (tc.image == unsigned || tc.image == tamperedKernel) && strings.Contains(serial, demoBanner) {
				t.Errorf("the demo OS ran from an image the firmware should refuse:\n%s", serial)
			}
			if tc.image == img && (strings.Contains(serial, "Access Denied") || strings.Contains(serial, "Security Violation")) {
				t.Errorf("the firmware refused part of the signed chain:\n%s", serial)
			}
		})
	}
}

// bootDisk boots a copy of image as a UEFI machine's only disk, with no network, until
// its serial console shows want (or 8 minutes pass), and returns the console's text.
func bootDisk(t *testing.T, image string, secureBoot bool, want string) string {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	copyFile(t, image, disk)
	fw, err := uefiFirmware(filepath.Join(dir, "vars.fd"), secureBoot)
	if err != nil {
		t.Fatal(err)
	}
	serial := filepath.Join(dir, "serial.log")
	args := append([]string{"-accel", "tcg", "-m", "512", "-display", "none", "-no-user-config", "-nodefaults",
		"-nic", "none", "-no-reboot", "-serial", "file:" + serial,
		"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + disk, "-device", "virtio-blk-pci,drive=d0,bootindex=1"}, fw...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	out, err := os.Create(filepath.Join(dir, "qemu.out"))
	if err != nil {
		t.Fatal(err)
	}
	qemu.Stdout, qemu.Stderr = out, out
	start := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = qemu.Wait(); close(exited) }()
	defer func() {
		cancel() // kills the QEMU this test started, by its PID
		<-exited
	}()
	deadline := time.Now().Add(8 * time.Minute)
	for {
		b, _ := os.ReadFile(serial)
		if strings.Contains(string(b), want) {
			t.Logf("%q on the serial console after %s (TCG)", want, time.Since(start).Round(time.Second))
			return string(b)
		}
		select {
		case <-exited:
			q, _ := os.ReadFile(out.Name())
			t.Fatalf("QEMU exited before %q appeared: %s\nserial console:\n%s", want, q, b)
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not appear on the serial console in time:\n%s", want, b)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
