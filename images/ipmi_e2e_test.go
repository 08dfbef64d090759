package images_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/bmc/bmctest"
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
	dir := t.TempDir()
	k, initramfs := agentInitramfs(t, dir)
	vm := &agentVM{kernel: k.Vmlinuz, initramfs: initramfs, disk: filepath.Join(dir, "disk.img"), dir: dir,
		extraArgs: []string{
			"-chardev", fmt.Sprintf("socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=1", bmctest.InBandKCSPort),
			"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0", "-device", "isa-ipmi-kcs,bmc=bmc0",
		}}
	vm.attach(t, "ipmi", 32*mib, 1)

	const bmcAddr = "10.77.0.99"
	script := filepath.Join(dir, "lan-config.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(lanConfigScript, bmcAddr)), 0o755); err != nil {
		t.Fatal(err)
	}
	bmctest.StartInBandBMC(t, vm.ns, fmt.Sprintf("    lan_config_program %q\n", script))

	token := hex.EncodeToString(randomBytes(32))
	api := agenttest.New(token, agenttest.Task{Node: "bmc-1", Action: agentapi.Inspect, AfterInspect: agentapi.RebootAfterInspect}, nil)
	startServices(t, vm.ns, api)
	took := vm.boot(t, token, nil)
	rep := api.Report()
	if len(rep.Inventory) != 1 {
		t.Fatalf("done %v, failed %v; agent log:\n%s", rep.Done, rep.Failed, strings.Join(rep.Logs, "\n"))
	}
	t.Logf("inspection with an external BMC: %s", took.Round(time.Second))
	if fw := rep.Firmware; len(fw) != 1 || fw[0].UEFI || fw[0].SecureBoot {
		t.Errorf("firmware reports %+v, want one: BIOS, no Secure Boot", fw)
	}
	if bmc := rep.Inventory[0].BMC; bmc == nil || bmc.Address != bmcAddr || bmc.Channel != 1 {
		t.Errorf("BMC = %+v, want %s on channel 1; agent log:\n%s", bmc, bmcAddr, strings.Join(rep.Logs, "\n"))
	}
}
