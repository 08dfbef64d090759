package bmctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
)

// A machine behind the BMC is a QEMU VM whose system interface is QEMU's ipmi-bmc-extern
// device, connected by a chardev to a second ipmi_sim (the "machine BMC") through
// OpenIPMI's VM codec. That simulator powers the VM on by running its startcmd (QEMU) and
// off by telling QEMU over the chardev (VM_CMD_POWEROFF: QEMU shuts the machine down
// itself); its power state is whether that QEMU runs; a hard reset is VM_CMD_RESET.
//
// Why two simulators: ipmi_sim (OpenIPMI 2.0.33, bmc_chassis.c) answers Set/Get System
// Boot Options (the boot-once flag) only through a chassis_control program, and once one
// is configured every chassis power command goes to that program as well, never to the VM
// codec. So the BMC that Bootyard and ipmitool talk to keeps the boot flag in a file and
// relays power on, off, status and reset, as an IPMI client, to the machine BMC, which is
// the one that starts and stops QEMU.
const (
	machineBMCPort  = 624  // the machine BMC's LAN port, inside the namespace only
	machineKCSPort  = 9002 // the VM codec's socket, QEMU's chardev
	machineBMCName  = "bootyard-machine"
	machineScript   = "machine.sh"
	machinePIDFile  = "qemu.pid"
	machineOutFile  = "qemu.out"
	machineBootsLog = "boots"
)

// relayChassisScript is the chassis_control program of the BMC Bootyard talks to, when
// the machine is a VM: the boot device is a file, power is relayed with ipmitool to the
// machine BMC. A relay that fails exits non-zero, so ipmi_sim answers an error rather
// than a made-up power state.
const relayChassisScript = `#!/bin/sh
d=%q
echo "$*" >> "$d/chassis.log"
vm() { ipmitool -I lanplus -C 3 -H 127.0.0.1 -p %d -U %q -P %q -R 2 -N 2 chassis "$@"; }
op=$1; shift
if [ "$op" = get ]; then
  for k in "$@"; do
    case $k in
    power) s=$(vm power status) || exit 1
      case $s in *"is on"*) echo power:1 ;; *) echo power:0 ;; esac ;;
    boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo none)" ;;
    *) echo "$k:0" ;;
    esac
  done
  exit 0
fi
while [ $# -gt 1 ]; do
  case "$1=$2" in
  power=1) vm power on >/dev/null || exit 1 ;;
  power=0) vm power off >/dev/null || exit 1 ;;
  reset=1) vm power reset >/dev/null || exit 1 ;;
  boot=*) echo "$2" > "$d/boot" ;;
  esac
  shift 2
done
`

// machineStart is the machine BMC's startcmd (ipmi_sim runs it as "exec CMD" and kills
// that PID to force a machine off). It records its PID, so the test can end a VM that
// outlives the simulator, and the one-time boot device pending at this power-on, which
// the VM cannot act on (its firmware tries the network first, as every machine Bootyard
// boots does); then it becomes QEMU.
const machineStart = `#!/bin/sh
d=%q
echo $$ > "$d/` + machinePIDFile + `"
echo "$(cat "$d/boot" 2>/dev/null || echo none)" >> "$d/` + machineBootsLog + `"
exec %s >> "$d/` + machineOutFile + `" 2>&1
`

// startMachineBMC runs the machine BMC in ns with its files in dir; qemu is the VM's
// command line, to which it adds the IPMI devices.
func startMachineBMC(t *testing.T, ns *netns.NS, dir string, qemu []string) {
	t.Helper()
	args := append(append([]string{}, qemu...),
		// reconnect: QEMU redials the VM codec's socket if the simulator drops it.
		"-chardev", fmt.Sprintf("socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=10", machineKCSPort),
		"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0", "-device", "isa-ipmi-kcs,bmc=bmc0")
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	writeFile(t, dir, machineScript, fmt.Sprintf(machineStart, dir, strings.Join(quoted, " ")), 0o755)
	// poweroff_wait bounds how long the VM may take to act on VM_CMD_POWEROFF before
	// ipmi_sim sends SIGTERM (a VM that did act exits within a second or two; the test
	// tells the two apart by QEMU's "terminating on signal" line); kill_wait then SIGKILL.
	runIPMISim(t, ns, dir, machineBMCName, fmt.Sprintf(`  startlan 1
    addr 127.0.0.1 %d
%s  endlan
  serial kcs 127.0.0.1 %d codec VM
  startcmd %q
  startnow false
  poweroff_wait 60
  kill_wait 10
`, machineBMCPort, lanAuth, machineKCSPort, filepath.Join(dir, machineScript)))
	t.Cleanup(func() {
		// Ending ipmi_sim does not end the QEMU it started: kill it, by its own PID.
		if pid := machinePID(dir); pid > 0 && running(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// Ready when it answers IPMI over LAN. (Not by dialling the VM codec's socket: a
	// client that hangs up at once can take ipmi_sim down with it.)
	WaitFor(t, "the machine BMC to answer", func() bool {
		_, err := ipmitool(ns, machineBMCPort, "chassis", "power", "status")
		return err == nil
	})
}

// MachineConnected reports whether the VM's ipmi-bmc-extern chardev is connected to the
// machine BMC: only then can a power off reach QEMU over it (without the connection,
// ipmi_sim kills the VM's process instead).
func (s *IPMISim) MachineConnected() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.NS.Exec(ctx, "ss", "-Htn", "state", "established", fmt.Sprintf("( sport = :%d )", machineKCSPort))
	return err == nil && strings.TrimSpace(string(out)) != ""
}

// MachineRuns reports whether the VM behind the BMC (Options.Machine) is running: its
// QEMU process, independently of what any BMC says.
func (s *IPMISim) MachineRuns() bool {
	pid := machinePID(s.Dir)
	return pid > 0 && running(pid)
}

// MachineBoots lists, for each power-on of the VM, the one-time boot device the BMC had
// pending then.
func (s *IPMISim) MachineBoots() []string { return strings.Fields(s.File(machineBootsLog)) }

// MachineOutput is what QEMU printed (its warnings, and how it ended when killed).
func (s *IPMISim) MachineOutput() string { return s.File(machineOutFile) }

func machinePID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, machinePIDFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// running is whether pid is a live process; ipmi_sim reaps the QEMU it started, so an
// ended VM leaves no zombie behind.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses; Z is a zombie not yet reaped.
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
