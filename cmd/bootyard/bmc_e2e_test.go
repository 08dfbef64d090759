package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/bmc/bmctest"
	"github.com/bootyard/bootyard/images/disk/disktest"
	"github.com/bootyard/bootyard/node"
)

// TestBMC_EndToEndImportInstallsDeleteWipesAndPowersOff is the end to end on
// real firmware, with nobody at the console: a node imported with an IPMI BMC (ipmi_sim
// in the lab's namespace, with a QEMU VM behind it through QEMU's ipmi-bmc-extern device:
// power on runs the simulator's startcmd, power off and the off half of a cycle reach QEMU
// over the chardev) is set to boot once from the network and powered on, and installs;
// deleted without a kubeconfig, it is set to boot from the network again and
// power-cycled, and is wiped; once wiped it is powered off. The whole history is in the
// node's events.
func TestBMC_EndToEndImportInstallsDeleteWipesAndPowersOff(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU under TCG twice: skipped with -short")
	}
	requireFirmware(t)
	bin := buildBinary(t)
	data := t.TempDir()
	buildAgentFiles(t, data)
	imgPath := filepath.Join(t.TempDir(), "test.raw")
	const imageSize = 32 << 20
	if err := disktest.GPTImage(imgPath, imageSize); err != nil {
		t.Fatal(err)
	}
	diskPath := filepath.Join(t.TempDir(), "disk.img")
	if err := disktest.SparseDisk(diskPath, imageSize+192<<20); err != nil {
		t.Fatal(err)
	}
	lab := &installLab{labServer: startLabIn(t, bin, data, "--advertise-url", "http://10.77.0.1:8080", "--bmc-poll-interval", "5s"), data: data}
	if err := os.Link(imgPath, lab.imagePath("test.raw")); err != nil {
		t.Fatal(err)
	}
	if code := lab.api(t, "POST", "/api/v1/images", `{"name":"test","file":"`+lab.imagePath("test.raw")+`","default":true}`, nil); code/100 != 2 {
		t.Fatalf("add image: %d", code)
	}
	if code := lab.api(t, "PATCH", "/api/v1/cluster", `{"serverURL":"https://10.77.0.10:6443","token":"K10`+randomHex(8)+`::server:`+randomHex(8)+`"}`, nil); code/100 != 2 {
		t.Fatalf("cluster settings: %d", code)
	}

	const mac = "52:54:00:77:15:01"
	// No -no-reboot: the machine reboots in place after the install and after the wipe
	// (its firmware tries the network first, as every Bootyard machine's does), so it is
	// running when the BMC cycles it and when it powers it off.
	sim := bmctest.StartIPMISimWith(t, bmctest.Options{NS: lab.ns, Machine: []string{
		"qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-display", "none", "-no-user-config", "-nodefaults",
		"-machine", "pc", "-serial", "file:" + filepath.Join(t.TempDir(), "serial.log"),
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-rng-pci",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",bootindex=1",
		"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + diskPath, "-device", "virtio-blk-pci,drive=d0,bootindex=2"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chassis log:\n%s\nQEMU:\n%s", sim.File("chassis.log"), tail(sim.MachineOutput(), 4000))
		}
	})
	bootFlags := func() string {
		t.Helper()
		out, err := sim.IPMITool("chassis", "bootparam", "get", "5")
		if err != nil {
			t.Fatalf("ipmitool chassis bootparam get 5: %v: %s", err, out)
		}
		return out
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(sim.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `{"macs":["` + mac + `"],"role":"worker","name":"bmc-1","bmc":"ipmi://` + sim.Addr + `","bmcUser":"` + sim.User + `","bmcPassword":"` + sim.Password + `"}`
	if code := lab.api(t, "POST", "/api/v1/nodes", body, nil); code != 201 {
		t.Fatalf("import: %d", code)
	}
	start := time.Now()
	lab.waitState(t, "bmc-1", node.StateInstalled, 25*time.Minute)
	t.Logf("import to installed, powered on by the BMC: %s (TCG)", time.Since(start).Round(time.Second))
	// The VM's firmware cannot act on the boot device (ipmi-bmc-extern carries power and
	// reset only), so the one-time boot request is checked at the BMC, with ipmitool.
	if out := bootFlags(); !strings.Contains(out, "Force PXE") || !strings.Contains(out, "Options apply to only next boot") {
		t.Fatalf("boot flags at the BMC after the import:\n%s", out)
	}
	// Running, and connected to the BMC over the chardev: the cycle's power off must
	// reach QEMU that way.
	waitFor(t, time.Minute, "the installed VM, rebooted in place, on the BMC's chardev", func() bool {
		return sim.MachineRuns() && sim.MachineConnected()
	})
	// Play the firmware's part: the one-time boot was taken, the flag is spent. The
	// deletion must set it again.
	sim.WriteFile(t, "boot", "none")
	if out := bootFlags(); strings.Contains(out, "Force PXE") {
		t.Fatalf("boot flags still force PXE once spent:\n%s", out)
	}

	if code := lab.api(t, "DELETE", "/api/v1/nodes/bmc-1", `{"confirm":"bmc-1"}`, nil); code/100 != 2 {
		t.Fatalf("delete: %d", code)
	}
	start = time.Now()
	lab.waitState(t, "bmc-1", node.StateDeleted, 25*time.Minute)
	t.Logf("delete to wiped, the VM cycled by the BMC: %s (TCG)", time.Since(start).Round(time.Second))
	waitFor(t, 2*time.Minute, "the wiped machine to be powered off", func() bool { return !sim.MachineRuns() })
	if out, _ := sim.IPMITool("chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Fatalf("ipmitool after the wipe: %q", out)
	}
	if out := bootFlags(); !strings.Contains(out, "Force PXE") {
		t.Fatalf("boot flags at the BMC after the deletion:\n%s", out)
	}
	// Two power-ons started a VM (the import's, the cycle's), both with a network boot
	// pending; both power-offs (the cycle's, the wiped one's) went to QEMU over the
	// chardev: a VM that ipmi_sim had to kill would say "terminating on signal".
	if boots := sim.MachineBoots(); len(boots) != 2 || boots[0] != "pxe" || boots[1] != "pxe" {
		t.Fatalf("one-time boot device pending at each VM start: %q, want pxe for the install and pxe for the wipe", boots)
	}
	if out := sim.MachineOutput(); strings.Contains(out, "terminating on signal") {
		t.Fatalf("a VM was killed rather than powered off over the chardev:\n%s", out)
	}
	if log := sim.File("chassis.log"); strings.Count(log, "set power 0") != 2 {
		t.Fatalf("BMC power-offs = %d, want the cycle's and the wiped one's:\n%s", strings.Count(log, "set power 0"), log)
	}

	var events []node.Event
	lab.api(t, "GET", "/api/v1/nodes/bmc-1/events", "", &events)
	var history []string
	for _, e := range events {
		if e.Type == node.EventPower || e.Type == node.EventTransition {
			history = append(history, string(e.Type)+": "+e.Reason)
		}
		if strings.Contains(e.Reason, sim.Password) {
			t.Fatalf("an event carries the BMC password: %+v", e)
		}
	}
	joined := strings.Join(history, "\n")
	for _, want := range []string{
		"power: boot once pxe, power on (imported: network boot to install): done",
		"power: boot once pxe, power cycle (deletion: network boot to wipe): done",
		"power: power off (wiped): done",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("history lacks %q:\n%s", want, joined)
		}
	}
	t.Logf("history:\n%s", joined)
}
