package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/images/disk/disktest"
	"github.com/bootyard/bootyard/node"
)

// Debian's OVMF built with Secure Boot, and its variable store with Microsoft's keys
// enrolled and Secure Boot enforced (package ovmf).
const (
	secureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	secureBootVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

func requireSecureBoot(t *testing.T) {
	t.Helper()
	requireFirmware(t)
	for _, p := range []string{secureBootCode, secureBootVars, "/usr/lib/shim/shimx64.efi.signed", "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (Debian packages ovmf, shim-signed, grub-efi-amd64-signed): %v", p, err)
		}
	}
}

// refusedByFirmware is what OVMF prints when Secure Boot refuses an image: the boot
// manager's "Access Denied" (EFI_SECURITY_VIOLATION) for the network boot option.
func refusedByFirmware(serial string) bool {
	return strings.Contains(serial, "Access Denied") || strings.Contains(serial, "Security Violation")
}

// TestSecureBoot_FirmwareRefusesIPXEAndShimAndGRUBReachTheAgent runs Debian's OVMF with
// Microsoft's keys and Secure Boot enforced. Control: given unsigned ipxe.efi (the
// default loader), the firmware refuses it and the machine never asks for an iPXE
// script. Then with the site's loader set to shim, the same machine boots the
// Microsoft-signed shim, Debian's signed GRUB, its per-MAC config and Debian's signed
// kernel with the agent, which reports Secure Boot on and installs the image.
func TestSecureBoot_FirmwareRefusesIPXEAndShimAndGRUBReachTheAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU under TCG with Secure Boot: skipped with -short")
	}
	requireSecureBoot(t)
	lab := startSecureBootLab(t)
	const mac = "52:54:00:77:5b:01"
	const name = "sb-1"
	if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+mac+`"],"role":"worker","name":"`+name+`"}`, nil); code != 201 {
		t.Fatalf("import: %d", code)
	}
	diskPath := secureBootDisk(t)

	t.Run("control: unsigned iPXE is refused", func(t *testing.T) {
		v := startVM(t, lab.ns, mac, vmOptions{secureBoot: true, disk: diskPath, noReboot: true, limit: 6 * time.Minute})
		serial := v.waitSerial(t, 5*time.Minute, "the firmware to refuse ipxe.efi", refusedByFirmware)
		n := lab.node(t, name)
		if n.State != node.StateRegistered || n.Boot.Firmware != "uefi" {
			t.Errorf("node after the refused boot: %s, firmware %q; want registered, seen by DHCP as uefi", n.State, n.Boot.Firmware)
		}
		if strings.Contains(serial, "iPXE") {
			t.Errorf("iPXE ran under Secure Boot:\n%s", tail(serial, 2000))
		}
		t.Logf("firmware refused ipxe.efi after %s", time.Since(v.start).Round(time.Second))
	})
	if t.Failed() {
		return
	}

	if code := lab.api(t, "PATCH", "/api/v1/cluster", `{"uefiLoader":"`+string(node.LoaderShim)+`"}`, nil); code/100 != 2 {
		t.Fatalf("set the site's UEFI loader: %d", code)
	}
	t.Run("shim and GRUB boot the agent, which reports Secure Boot on", func(t *testing.T) {
		v := startVM(t, lab.ns, mac, vmOptions{secureBoot: true, disk: diskPath, noReboot: true, limit: 20 * time.Minute})
		lab.waitState(t, name, node.StateInstalled, 18*time.Minute)
		t.Logf("power-on to installed through shim and GRUB in %s (TCG)", time.Since(v.start).Round(time.Second))
		lab.checkSignedChainInstall(t, name, v)
		v.waitPowerOff(t, 5*time.Minute)
	})
	if t.Failed() {
		return
	}

	t.Run("the installed disk boots its own shim and GRUB with Secure Boot on", func(t *testing.T) {
		v := startVM(t, lab.ns, mac, vmOptions{secureBoot: true, disk: diskPath, noReboot: true, limit: 10 * time.Minute})
		// The kernel's lockdown line comes after its command line and the EFI stub's word
		// on Secure Boot: waiting for it waits for all three.
		serial := v.waitSerial(t, 8*time.Minute, "the installed system's kernel locked down by Secure Boot", func(s string) bool {
			return strings.Contains(s, "Kernel is locked down from EFI Secure Boot")
		})
		for _, want := range []string{"Bootyard: starting", "/EFI/debian/shimx64.efi", installedOSMark, "UEFI Secure Boot is enabled"} {
			if !strings.Contains(serial, want) {
				t.Errorf("serial console lacks %q:\n%s", want, tail(serial, 3000))
			}
		}
		if refusedByFirmware(serial) {
			t.Errorf("the firmware refused something on the way to the disk:\n%s", tail(serial, 3000))
		}
		lab.waitEventFrom(t, name, "grub", "GRUB config served: localboot")
		t.Logf("power-on to the installed system's kernel with Secure Boot on in %s (TCG)", time.Since(v.start).Round(time.Second))
	})

	t.Run("a wipe boots the agent through the same chain", func(t *testing.T) {
		if code := lab.api(t, "DELETE", "/api/v1/nodes/"+name, `{"confirm":"`+name+`"}`, nil); code/100 != 2 {
			t.Fatalf("delete: %d", code)
		}
		if st := lab.node(t, name).State; st != node.StateWiping {
			t.Fatalf("deleted installed node is %s, want wiping", st)
		}
		v := startVM(t, lab.ns, mac, vmOptions{secureBoot: true, disk: diskPath, noReboot: true, limit: 20 * time.Minute})
		lab.waitState(t, name, node.StateDeleted, 18*time.Minute)
		t.Logf("power-on to wiped and reinstalled through shim and GRUB in %s (TCG)", time.Since(v.start).Round(time.Second))
		lab.waitEventFrom(t, name, "grub", "GRUB config served: wipe")
	})

	// The same chain on firmware without Secure Boot: shim and GRUB run as plain EFI
	// programs, and the agent says so.
	t.Run("with Secure Boot off the chain boots too and the agent reports it off", func(t *testing.T) {
		const offMAC, offName = "52:54:00:77:5b:02", "sb-off"
		if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+offMAC+`"],"role":"worker","name":"`+offName+`"}`, nil); code != 201 {
			t.Fatalf("import: %d", code)
		}
		disk := secureBootDisk(t)
		v := startVM(t, lab.ns, offMAC, vmOptions{uefi: true, disk: disk, noReboot: true, limit: 20 * time.Minute})
		lab.waitState(t, offName, node.StateInstalled, 18*time.Minute)
		t.Logf("power-on to installed through shim and GRUB, Secure Boot off, in %s (TCG)", time.Since(v.start).Round(time.Second))
		if n := lab.node(t, offName); n.SecureBoot == nil || *n.SecureBoot {
			t.Errorf("node's Secure Boot = %v, want off (reported by the agent)", n.SecureBoot)
		}
		if serial, _ := os.ReadFile(v.serial); !strings.Contains(string(serial), "Welcome to GRUB") {
			t.Errorf("the machine did not boot through GRUB:\n%s", tail(string(serial), 3000))
		}
	})
}

// secureBootImageSize is the size of the Secure Boot tests' image (secureBootImage).
const secureBootImageSize = 64 << 20

// startSecureBootLab starts Bootyard with the agent's files, a default image whose ESP
// carries the signed chain (secureBootImage) and join settings, ready for a node.
func startSecureBootLab(t *testing.T) *installLab {
	t.Helper()
	bin := buildBinary(t)
	data := t.TempDir()
	buildAgentFiles(t, data)
	lab := startInstallLab(t, bin, data)
	secureBootImage(t, lab.imagePath("test.raw"), secureBootImageSize, filepath.Join(data, "agent"))
	if code := lab.api(t, "POST", "/api/v1/images", `{"name":"test","file":"`+lab.imagePath("test.raw")+`","default":true}`, nil); code/100 != 2 {
		t.Fatalf("add image: %d", code)
	}
	if code := lab.api(t, "PATCH", "/api/v1/cluster", `{"serverURL":"https://10.77.0.10:6443","token":"K10`+randomHex(16)+`::server:`+randomHex(8)+`"}`, nil); code/100 != 2 {
		t.Fatalf("cluster settings: %d", code)
	}
	return lab
}

// secureBootDisk is an empty disk the Secure Boot tests' image fits on.
func secureBootDisk(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := disktest.SparseDisk(path, secureBootImageSize+192<<20); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkSignedChainInstall checks an install through shim and GRUB under Secure Boot: the
// agent reported Secure Boot on, GRUB's config and the agent's report are on record, and
// the firmware refused nothing on the way. It returns the serial console's text.
func (l *installLab) checkSignedChainInstall(t *testing.T, name string, v *vm) string {
	t.Helper()
	if n := l.node(t, name); n.SecureBoot == nil || !*n.SecureBoot {
		t.Errorf("node's Secure Boot = %v, want on (reported by the agent)", n.SecureBoot)
	}
	l.waitEventFrom(t, name, "grub", "GRUB install config served")
	l.waitEventFrom(t, name, "agent", "firmware: UEFI, Secure Boot on")
	serial, _ := os.ReadFile(v.serial)
	if refusedByFirmware(string(serial)) {
		t.Errorf("the firmware refused something in the signed chain:\n%s", tail(string(serial), 3000))
	}
	return string(serial)
}

// waitEventFrom waits for the node's event whose reason holds want and checks who wrote it.
func (l *installLab) waitEventFrom(t *testing.T, name, source, want string) {
	t.Helper()
	if e := l.waitEvent(t, name, want, time.Minute); e.Source != source {
		t.Errorf("event %q came from %q, want %q", e.Reason, e.Source, source)
	}
}

// waitSerial waits until the serial console's text satisfies ok, and returns it.
func (v *vm) waitSerial(t *testing.T, limit time.Duration, what string, ok func(serial string) bool) string {
	t.Helper()
	var serial string
	waitFor(t, limit, what, func() bool {
		b, _ := os.ReadFile(v.serial)
		serial = string(b)
		return ok(serial)
	})
	return serial
}

// installedOSMark is on the installed system's kernel command line: the kernel echoes
// its command line on the console, so the mark shows the disk's own chain started it.
const installedOSMark = "bootyard.test=installed-os"

// secureBootImage writes a GPT disk image of size bytes whose ESP holds what a Debian
// system installed for Secure Boot has: Microsoft-signed shim and Debian-signed GRUB in
// \EFI\debian, GRUB's config there, and Debian's signed kernel (the agent's, with its
// initramfs standing in for the system). Made with sgdisk, mkfs.vfat and mtools.
func secureBootImage(t *testing.T, path string, size int64, agentDir string) {
	t.Helper()
	for _, tool := range []string{"sgdisk", "mkfs.vfat", "mcopy", "mmd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages gdisk, dosfstools, mtools)", tool)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "grub.cfg")
	// Debian's signed grubx64.efi has the prefix /EFI/debian and sources grub.cfg there.
	if err := os.WriteFile(cfg, []byte("set timeout=0\necho 'installed system: starting its kernel'\n"+
		"linux /vmlinuz console=ttyS0,115200 panic=-1 "+installedOSMark+"\ninitrd /initramfs.gz\nboot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	esp := filepath.Join(dir, "esp.img")
	const espMiB = 48
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("mkfs.vfat", "-C", esp, strconv.Itoa(espMiB<<10))
	run("mmd", "-i", esp, "::/EFI", "::/EFI/debian")
	for src, dst := range map[string]string{
		"/usr/lib/shim/shimx64.efi.signed":                   "::/EFI/debian/shimx64.efi",
		"/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": "::/EFI/debian/grubx64.efi",
		cfg:                                     "::/EFI/debian/grub.cfg",
		filepath.Join(agentDir, "vmlinuz"):      "::/vmlinuz",
		filepath.Join(agentDir, "initramfs.gz"): "::/initramfs.gz",
	} {
		run("mcopy", "-i", esp, src, dst)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	espBytes, err := os.ReadFile(esp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(espBytes, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run("sgdisk", "-n", "1:2048:+"+strconv.Itoa(espMiB)+"M", "-t", "1:ef00", "-c", "1:EFI", path)
}
