package bmc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/bmc/bmctest"
)

// TestIPMI_PowerDrivesAVMThroughQEMUsIPMIBMCExtern drives a QEMU machine with Bootyard's
// IPMI client: the VM's BMC is ipmi_sim behind QEMU's ipmi-bmc-extern device (OpenIPMI's
// VM codec), which starts QEMU for power on and tells it over the chardev to shut down for
// power off. What the machine did is read from the QEMU process and its firmware's debug
// log, not from the BMC.
func TestIPMI_PowerDrivesAVMThroughQEMUsIPMIBMCExtern(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	dir := t.TempDir()
	firmwareLog := filepath.Join(dir, "seabios.log")
	// No disk and no network: SeaBIOS finds nothing to boot and waits, a machine that is
	// simply on. Its debug port (0x402) logs one banner per boot, so a reset is visible.
	sim := bmctest.StartIPMISimWith(t, bmctest.Options{Machine: []string{
		"qemu-system-x86_64", "-accel", "tcg", "-m", "64", "-display", "none", "-no-user-config", "-nodefaults",
		"-machine", "pc", "-chardev", "file,id=dbg,append=on,path=" + firmwareLog, "-device", "isa-debugcon,iobase=0x402,chardev=dbg",
	}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chassis log:\n%s\nQEMU:\n%s", sim.File("chassis.log"), sim.MachineOutput())
		}
	})
	ctx := context.Background()
	c, status := simClient(t, sim)
	boots := func() int {
		b, _ := os.ReadFile(firmwareLog)
		return strings.Count(string(b), "SeaBIOS (version")
	}
	status(PowerOff)
	if sim.MachineRuns() {
		t.Fatal("a VM runs before any power on")
	}

	if err := c.SetBootOnce(ctx, BootPXE); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "power on to start the VM, its firmware and its chardev", func() bool {
		return sim.MachineRuns() && boots() == 1 && sim.MachineConnected()
	})
	status(PowerOn)
	if got := sim.MachineBoots(); len(got) != 1 || got[0] != "pxe" {
		t.Fatalf("boot device pending at power-on = %q, want [pxe]", got)
	}

	// A hard reset reaches QEMU over the chardev (VM_CMD_RESET): the firmware starts
	// again in the same process.
	if err := c.PowerReset(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reset to restart the firmware", func() bool { return boots() >= 2 })
	if got := sim.MachineBoots(); len(got) != 1 {
		t.Fatalf("a reset started a new VM: boots %q", got)
	}

	// Cycle from on: off over the chardev, then ipmi_sim starts QEMU again. (The second
	// VM's firmware may log more than one banner: only "at least one more" is asserted.)
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	var state string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen: %s", state)
		}
	})
	waitFor(t, "the cycle to start a second VM, connected", func() bool {
		state = fmt.Sprintf("VM starts %q, running %v, firmware boots %d, chardev connected %v",
			sim.MachineBoots(), sim.MachineRuns(), boots(), sim.MachineConnected())
		return len(sim.MachineBoots()) == 2 && sim.MachineRuns() && boots() >= 3 && sim.MachineConnected()
	})
	status(PowerOn)

	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "power off to end the VM", func() bool { return !sim.MachineRuns() })
	status(PowerOff)
	// QEMU shut down because the BMC told it to, not because ipmi_sim's poweroff_wait ran
	// out and it was killed (QEMU then prints "terminating on signal 15").
	if out := sim.MachineOutput(); strings.Contains(out, "terminating on signal") {
		t.Fatalf("the VM was killed rather than powered off over the chardev:\n%s", out)
	}
	if out, _ := sim.IPMITool("chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Fatalf("ipmitool says %q after PowerOff", out)
	}
}
