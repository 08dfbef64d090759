package bmc

import (
	"context"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/bmc/bmctest"
)

func TestIPMI_PowerAndBootOnceAgainstOpenIPMISimulator(t *testing.T) {
	sim := bmctest.StartIPMISim(t)
	ctx := context.Background()
	c, status := simClient(t, sim)
	status(PowerOff)

	// Cycle from off powers on: the machine must end up booting either way.
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sim.File("power"); got != "1" {
		t.Fatalf("chassis power after cycle from off = %q, want 1", got)
	}
	status(PowerOn)

	if err := c.SetBootOnce(ctx, BootPXE); err != nil {
		t.Fatal(err)
	}
	out, err := sim.IPMITool("chassis", "bootparam", "get", "5")
	if err != nil {
		t.Fatalf("ipmitool bootparam get 5: %v: %s", err, out)
	}
	if !strings.Contains(out, "Force PXE") || !strings.Contains(out, "Options apply to only next boot") {
		t.Fatalf("boot flags after SetBootOnce(pxe), as ipmitool reads them:\n%s", out)
	}
	if err := c.SetBootOnce(ctx, BootDisk); err != nil {
		t.Fatal(err)
	}
	if out, _ := sim.IPMITool("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Force Boot from default Hard-Drive") {
		t.Fatalf("boot flags after SetBootOnce(disk):\n%s", out)
	}

	if err := c.PowerReset(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sim.File("reset"); got != "1" {
		t.Fatalf("chassis reset = %q, want 1", got)
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	status(PowerOff)
	if out, _ := sim.IPMITool("chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Fatalf("ipmitool says %q after PowerOff", out)
	}
	if err := c.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	status(PowerOn)
	// Cycle from on: ipmi_sim powers off, then on again a second later.
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cycle to power off and on", func() bool {
		return strings.Contains(sim.File("chassis.log"), "set power 0\n") && sim.File("power") == "1"
	})
}

func TestIPMI_WrongPasswordIsAnErrorWithoutThePassword(t *testing.T) {
	sim := bmctest.StartIPMISim(t)
	wrong := "Wrong-pw-5521"
	c, err := New(simTarget(sim, wrong))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PowerStatus(context.Background())
	if err == nil {
		t.Fatal("a wrong password opened a session")
	}
	t.Logf("wrong password: %v", err)
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), sim.Password) {
		t.Fatalf("error carries a password: %v", err)
	}
	if got := sim.File("power"); got != "" {
		t.Fatalf("chassis touched without a session: power=%q", got)
	}
}
