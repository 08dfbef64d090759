package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/bmc/bmctest"
	"github.com/bootyard/bootyard/images/disk/disktest"
	"github.com/bootyard/bootyard/node"
)

// vmChassis is the chassis_control program of an ipmi_sim whose machine is a QEMU VM:
// power on starts the VM (in the background: ipmi_sim waits for the program), power off
// kills it, the power state is whether it runs. The VM's firmware tries the network first,
// as Bootyard's machines do (Bootyard decides every boot), so the boot device the BMC was
// asked for is not carried into QEMU; instead each power-on records, in the file boots,
// which one-time boot device was pending, and consumes it, as firmware does.
const vmChassis = `#!/bin/sh
d=%q
echo "$*" >> "$d/chassis.log"
alive() { [ -f "$d/qemu.pid" ] && kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null; }
start() {
  cat "$d/boot" 2>/dev/null >> "$d/boots" || echo none >> "$d/boots"
  echo none > "$d/boot"
  setsid %s </dev/null >> "$d/qemu.out" 2>&1 &
  echo $! > "$d/qemu.pid"
}
stop() { alive && kill "$(cat "$d/qemu.pid")"; rm -f "$d/qemu.pid"; }
op=$1; shift
if [ "$op" = get ]; then
  for k in "$@"; do
    case $k in
    power) if alive; then echo power:1; else echo power:0; fi ;;
    boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo none)" ;;
    *) echo "$k:0" ;;
    esac
  done
  exit 0
fi
while [ $# -gt 1 ]; do
  case "$1=$2" in
  power=1) alive || start ;;
  power=0) stop ;;
  reset=1) stop; start ;;
  boot=*) echo "$2" > "$d/boot" ;;
  esac
  shift 2
done
`

// TestBMC_EndToEndImportInstallsDeleteWipesAndPowersOff is the end to end on
// real firmware, with nobody at the console: a node imported with an IPMI BMC (ipmi_sim
// in the lab's namespace, starting and stopping a QEMU VM) is set to boot once from the
// network and powered on, and installs; deleted without a kubeconfig, it is set to boot
// from the network again and power-cycled, and is wiped; once wiped it is powered off.
// The whole history is in the node's events.
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
	qemu := strings.Join([]string{"qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-display", "none", "-no-user-config", "-nodefaults",
		"-machine", "pc", "-no-reboot", "-serial", "file:$d/serial.log",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-rng-pci",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",bootindex=1",
		"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + diskPath, "-device", "virtio-blk-pci,drive=d0,bootindex=2"}, " ")
	sim := bmctest.StartIPMISimWith(t, bmctest.Options{NS: lab.ns, Chassis: func(dir string) string {
		return fmt.Sprintf(vmChassis, dir, qemu)
	}})
	t.Cleanup(func() {
		// Kill the VM the chassis started, by its own PID, if it still runs.
		if b, err := os.ReadFile(filepath.Join(sim.Dir, "qemu.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			serial, _ := os.ReadFile(filepath.Join(sim.Dir, "serial.log"))
			t.Logf("chassis log:\n%s\nVM serial (tail):\n%s", sim.File("chassis.log"), tail(string(serial), 4000))
		}
	})
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
	waitFor(t, 5*time.Minute, "the installed VM to reboot (QEMU exits: -no-reboot)", func() bool { return !vmRuns(sim) })

	if code := lab.api(t, "DELETE", "/api/v1/nodes/bmc-1", `{"confirm":"bmc-1"}`, nil); code/100 != 2 {
		t.Fatalf("delete: %d", code)
	}
	start = time.Now()
	lab.waitState(t, "bmc-1", node.StateDeleted, 25*time.Minute)
	t.Logf("delete to wiped, the VM started by the BMC: %s (TCG)", time.Since(start).Round(time.Second))
	waitFor(t, 2*time.Minute, "the wiped machine to be powered off", func() bool {
		return !vmRuns(sim) && strings.Count(sim.File("chassis.log"), "set power 0") >= 1
	})
	if out, _ := sim.IPMITool("chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Fatalf("ipmitool after the wipe: %q", out)
	}
	if boots := strings.Fields(sim.File("boots")); len(boots) != 2 || boots[0] != "pxe" || boots[1] != "pxe" {
		t.Fatalf("one-time boot device pending at each power-on: %q, want pxe for the install and pxe for the wipe", boots)
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

// vmRuns reports whether the chassis's VM process is alive.
func vmRuns(sim *bmctest.IPMISim) bool {
	pid, err := strconv.Atoi(sim.File("qemu.pid"))
	return err == nil && syscall.Kill(pid, 0) == nil
}
