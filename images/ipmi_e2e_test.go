package images_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/images/agenttest"
)

// lanConfigScript is OpenIPMI's lan_config_program: "get NAME..." prints NAME:VALUE
// for the LAN parameters the simulated BMC reports.
const lanConfigScript = `#!/bin/sh
[ "$1" = get ] || exit 0
shift
for k in "$@"; do
  case $k in
    ip_addr) echo "ip_addr:%s" ;;
    ip_addr_src) echo "ip_addr_src:static" ;;
    subnet_mask) echo "subnet_mask:255.255.255.0" ;;
    *mac_addr) echo "$k:52:54:00:77:00:99" ;;
    *) echo "$k:0.0.0.0" ;;
  esac
done
`

// TestAgentQEMU_InspectionReadsTheBMCAddressInBand connects QEMU's KCS interface to
// OpenIPMI's simulator (ipmi_sim, the openipmi package) as an external BMC whose LAN
// channel has an address: the inspection must report that address, read through
// /dev/ipmi0 inside the machine.
func TestAgentQEMU_InspectionReadsTheBMCAddressInBand(t *testing.T) {
	requireQEMU(t)
	if _, err := exec.LookPath("ipmi_sim"); err != nil {
		t.Skip("ipmi_sim is not installed (Debian package openipmi)")
	}
	dir := t.TempDir()
	k, initramfs := agentInitramfs(t, dir)
	vm := &agentVM{kernel: k.Vmlinuz, initramfs: initramfs, disk: filepath.Join(dir, "disk.img"), dir: dir,
		extraArgs: []string{
			"-chardev", "socket,id=ipmi0,host=127.0.0.1,port=9002,reconnect=1",
			"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0", "-device", "isa-ipmi-kcs,bmc=bmc0",
		}}
	vm.attach(t, "ipmi", 32*mib, 1)

	const bmcAddr = "10.77.0.99"
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	script := write("lan-config.sh", fmt.Sprintf(lanConfigScript, bmcAddr), 0o755)
	conf := write("lan.conf", fmt.Sprintf(`name "bootyard-inspect"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 623
    priv_limit admin
    allowed_auths_admin md5
    lan_config_program %q
  endlan
  serial kcs 127.0.0.1 9002 codec VM
`, script), 0o600)
	emu := write("bmc.emu", "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n", 0o600)
	os.Mkdir(filepath.Join(dir, "state"), 0o700)
	ctx, cancel := context.WithCancel(context.Background())
	sim := vm.ns.Command(ctx, "ipmi_sim", "-c", conf, "-f", emu, "-s", filepath.Join(dir, "state"), "-n")
	var out strings.Builder
	sim.Stdout, sim.Stderr = &out, &out
	if err := sim.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // ends the ipmi_sim this test started, by its PID
		sim.Wait()
		if t.Failed() {
			t.Logf("ipmi_sim output:\n%s", out.String())
		}
	})
	// Wait for the simulator's KCS socket before QEMU connects to it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := vm.ns.Do(func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:9002", time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipmi_sim never listened on 9002: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	token := hex.EncodeToString(randomBytes(32))
	api := agenttest.New(token, agenttest.Task{Node: "bmc-1", Action: agentapi.Inspect, AfterInspect: agentapi.RebootAfterInspect}, nil)
	startServices(t, vm.ns, api)
	took := vm.boot(t, token, nil)
	rep := api.Report()
	if len(rep.Inventory) != 1 {
		t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
	}
	t.Logf("inspection with an external BMC: %s", took.Round(time.Second))
	if bmc := rep.Inventory[0].BMC; bmc == nil || bmc.Address != bmcAddr || bmc.Channel != 1 {
		t.Errorf("BMC = %+v, want %s on channel 1; agent log:\n%s", bmc, bmcAddr, strings.Join(rep.Logs, "\n"))
	}
}
