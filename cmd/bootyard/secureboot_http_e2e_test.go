package main

import (
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// TestSecureBoot_HTTPBootShimAndGRUBReachTheAgent is the signed chain under UEFI HTTP
// boot: Debian's OVMF with Microsoft's keys and Secure Boot enforced, PXE off in the
// firmware, so it asks DHCP with the HTTPClient vendor class and boots the URL it is
// given. With the node's loader shim, that URL is the chain's disk image: the firmware
// loads it into a RAM disk and starts its shim, which starts Debian's signed GRUB beside
// it; GRUB, which has no HTTP, asks DHCP for an address and reads its config and the
// agent over TFTP from Bootyard. The agent reports Secure Boot on and installs.
func TestSecureBoot_HTTPBootShimAndGRUBReachTheAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU under TCG with Secure Boot: skipped with -short")
	}
	requireSecureBoot(t)
	lab := startSecureBootLab(t)
	const mac, name = "52:54:00:77:5b:11", "sb-http"
	if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+mac+`"],"role":"worker","name":"`+name+`","uefiLoader":"`+string(node.LoaderShim)+`"}`, nil); code != 201 {
		t.Fatalf("import: %d", code)
	}
	v := startVM(t, lab.ns, mac, vmOptions{secureBoot: true, httpBoot: true, disk: secureBootDisk(t), noReboot: true, limit: 20 * time.Minute})
	lab.waitState(t, name, node.StateInstalled, 18*time.Minute)
	t.Logf("power-on to installed through HTTP boot, shim and GRUB in %s (TCG)", time.Since(v.start).Round(time.Second))
	n := lab.node(t, name)
	// The last DHCP client on record is GRUB's net_bootp, which also says HTTPClient.
	if !strings.HasPrefix(n.Boot.VendorClass, "HTTPClient") {
		t.Errorf("node's boot record %+v: want the HTTPClient vendor class (the machine HTTP-booted)", n.Boot)
	}
	serial := lab.checkSignedChainInstall(t, name, v)
	for _, want := range []string{"URI: http://10.77.0.1:8080/ipxe/shimx64-httpboot.img", "Welcome to GRUB", "Bootyard: UEFI HTTP boot, asking DHCP"} {
		if !strings.Contains(serial, want) {
			t.Errorf("serial console lacks %q: the machine did not boot the chain through HTTP boot:\n%s", want, tail(serial, 3000))
		}
	}
	v.waitPowerOff(t, 5*time.Minute)
}
