package main

import (
	"os"
	"path/filepath"
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
	bin := buildBinary(t)
	data := t.TempDir()
	buildAgentFiles(t, data)
	lab := startInstallLab(t, bin, data)
	const mac = "52:54:00:77:5b:01"
	const name = "sb-1"

	imgPath := filepath.Join(t.TempDir(), "test.raw")
	imageSize := int64(32 << 20)
	if err := disktest.GPTImage(imgPath, imageSize); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(imgPath, lab.imagePath("test.raw")); err != nil {
		t.Fatal(err)
	}
	if code := lab.api(t, "POST", "/api/v1/images", `{"name":"test","file":"`+lab.imagePath("test.raw")+`","default":true}`, nil); code/100 != 2 {
		t.Fatalf("add image: %d", code)
	}
	if code := lab.api(t, "PATCH", "/api/v1/cluster", `{"serverURL":"https://10.77.0.10:6443","token":"K10`+randomHex(16)+`::server:`+randomHex(8)+`"}`, nil); code/100 != 2 {
		t.Fatalf("cluster settings: %d", code)
	}
	if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+mac+`"],"role":"worker","name":"`+name+`"}`, nil); code != 201 {
		t.Fatalf("import: %d", code)
	}
	diskPath := filepath.Join(t.TempDir(), "disk.img")
	if err := disktest.SparseDisk(diskPath, imageSize+192<<20); err != nil {
		t.Fatal(err)
	}

	t.Run("control: unsigned iPXE is refused", func(t *testing.T) {
		v := startVM(t, lab.ns, mac, vmOptions{secureBoot: true, disk: diskPath, noReboot: true, limit: 6 * time.Minute})
		var serial string
		waitFor(t, 5*time.Minute, "the firmware to refuse ipxe.efi", func() bool {
			b, _ := os.ReadFile(v.serial)
			serial = string(b)
			return refusedByFirmware(serial)
		})
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
		n := lab.node(t, name)
		if n.SecureBoot == nil || !*n.SecureBoot {
			t.Errorf("node's Secure Boot = %v, want on (reported by the agent)", n.SecureBoot)
		}
		var events []node.Event
		lab.api(t, "GET", "/api/v1/nodes/"+name+"/events", "", &events)
		sawGRUB, sawFirmware := false, false
		for _, e := range events {
			sawGRUB = sawGRUB || (e.Source == "grub" && strings.Contains(e.Reason, "GRUB install config served"))
			sawFirmware = sawFirmware || (e.Source == "agent" && strings.Contains(e.Reason, "UEFI, Secure Boot on"))
		}
		if !sawGRUB || !sawFirmware {
			t.Errorf("events lack the GRUB install config (%v) or the agent's Secure Boot report (%v): %+v", sawGRUB, sawFirmware, events)
		}
		serial, _ := os.ReadFile(v.serial)
		if refusedByFirmware(string(serial)) {
			t.Errorf("the firmware refused something in the signed chain:\n%s", tail(string(serial), 3000))
		}
	})
}
