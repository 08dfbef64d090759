// Package bmctest runs a real IPMI BMC for tests: OpenIPMI's ipmi_sim in a network
// namespace of its own, with a chassis whose power and boot device the test can read, or
// with a QEMU VM behind it through QEMU's ipmi-bmc-extern device.
package bmctest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
)

// IPMISim is OpenIPMI's ipmi_sim, a real IPMI BMC, answering IPMI over LAN on the
// loopback of a network namespace of its own. Its chassis is a shell script
// (lan.conf's chassis_control) that keeps the machine's power and next boot device in
// files: the "hardware" the test reads, independently of any IPMI client. With
// Options.Machine the power is instead a QEMU VM's (see machine.go).
type IPMISim struct {
	NS       *netns.NS
	Addr     string // host:port inside the namespace
	User     string
	Password string
	Dir      string // the chassis files: power, boot, reset, chassis.log
}

const ipmiSimUser, ipmiSimPassword = "admin", "Sim-pw-7731-secret"

// chassisScript is the chassis_control program: ipmi_sim runs `script get power boot`
// and reads "power:1" lines, and `script set power "1"` to act (OpenIPMI extcmd).
const chassisScript = `#!/bin/sh
d=%q
echo "$*" >> "$d/chassis.log"
op=$1; shift
if [ "$op" = get ]; then
  for k in "$@"; do
    def=0; [ "$k" = boot ] && def=none
    v=$(cat "$d/$k" 2>/dev/null || echo $def)
    echo "$k:$v"
  done
else
  while [ $# -gt 1 ]; do echo "$2" > "$d/$1"; shift 2; done
fi
`

func StartIPMISim(t *testing.T) *IPMISim { return StartIPMISimWith(t, Options{}) }

// Options change the simulator's surroundings.
type Options struct {
	// NS is the namespace it answers in; nil makes one of its own.
	NS *netns.NS
	// Machine, when set, is a QEMU command line (without its IPMI devices) for the machine
	// behind the BMC: see startMachineBMC. Its power is then the VM's, driven through
	// QEMU's ipmi-bmc-extern device, and only the boot device stays in a chassis file.
	Machine []string
}

// StartIPMISimWith is StartIPMISim with options.
func StartIPMISimWith(t *testing.T, o Options) *IPMISim {
	t.Helper()
	for _, tool := range []string{"ipmi_sim", "ipmitool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian packages openipmi, ipmitool)", tool)
		}
	}
	ns := o.NS
	if ns == nil {
		ns = netns.New(t, "bmc")
	}
	dir := t.TempDir()
	chassis := fmt.Sprintf(chassisScript, dir)
	if o.Machine != nil {
		startMachineBMC(t, ns, dir, o.Machine)
		chassis = fmt.Sprintf(relayChassisScript, dir, machineBMCPort, ipmiSimUser, ipmiSimPassword)
	}
	writeFile(t, dir, "chassis.sh", chassis, 0o755)
	runIPMISim(t, ns, dir, "bootyard-test", fmt.Sprintf(`  startlan 1
    addr 127.0.0.1 623
%s  endlan
  chassis_control %q
`, lanAuth, filepath.Join(dir, "chassis.sh")))
	sim := &IPMISim{NS: ns, Addr: "127.0.0.1:623", User: ipmiSimUser, Password: ipmiSimPassword, Dir: dir}
	// Ready when it answers a chassis status, asked by an independent client.
	WaitFor(t, "ipmi_sim to answer", func() bool {
		_, err := sim.IPMITool("chassis", "power", "status")
		return err == nil
	})
	return sim
}

// lanAuth is the LAN channel's authentication: admin over RMCP+, as Bootyard logs in.
const lanAuth = `    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
`

// runIPMISim runs one ipmi_sim in ns with the MC and LAN settings given, its files in dir,
// until the test ends.
func runIPMISim(t *testing.T, ns *netns.NS, dir, name, settings string) {
	t.Helper()
	conf := fmt.Sprintf("name %q\nset_working_mc 0x20\n%s  user 2 true %q %q admin 10 md5\n", name, settings, ipmiSimUser, ipmiSimPassword)
	writeFile(t, dir, name+".conf", conf, 0o600)
	writeFile(t, dir, name+".emu", "mc_setbmc 0x20\nmc_add 0x20 0 has-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n", 0o600)
	state := filepath.Join(dir, name+".state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "ipmi_sim", "-c", filepath.Join(dir, name+".conf"), "-f", filepath.Join(dir, name+".emu"), "-s", state, "-n")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // kills ipmi_sim, by its own PID
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ipmi_sim %s output:\n%s", name, out.String())
		}
	})
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// IPMITool runs ipmitool inside the simulator's namespace: the independent client that
// checks what Bootyard's go-ipmi client did. -C 3 pins the cipher suite as Bootyard does.
func (s *IPMISim) IPMITool(args ...string) (string, error) { return ipmitool(s.NS, 623, args...) }

// ipmitool runs ipmitool against the simulator listening on port in ns.
func ipmitool(ns *netns.NS, port int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-U", ipmiSimUser, "-P", ipmiSimPassword, "-R", "1", "-N", "1"}, args...)
	out, err := ns.Exec(ctx, "ipmitool", full...)
	return string(out), err
}

// File is a chassis file's content ("" when never written).
func (s *IPMISim) File(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, name))
	return strings.TrimSpace(string(b))
}

// WriteFile sets a chassis file, as the machine's firmware would (a consumed boot flag).
func (s *IPMISim) WriteFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond until it holds, failing the test at a generous deadline.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// InBandKCSPort is the port of the VM codec's socket that StartInBandBMC listens on, for
// QEMU's chardev: -chardev socket,id=ipmi0,host=127.0.0.1,port=9002 -device
// ipmi-bmc-extern,id=bmc0,chardev=ipmi0 -device isa-ipmi-kcs,bmc=bmc0.
const InBandKCSPort = 9002

// StartInBandBMC runs ipmi_sim in ns as the BMC a QEMU VM reaches in band, through its
// KCS interface (QEMU's ipmi-bmc-extern connects to InBandKCSPort), with a LAN channel 1
// whose own settings (lan_config_program and the like) are lanSettings. It returns once
// the simulator answers IPMI over LAN, so QEMU can connect: not by dialling the KCS socket,
// since a client that hangs up at once can take ipmi_sim down with it.
func StartInBandBMC(t *testing.T, ns *netns.NS, lanSettings string) {
	t.Helper()
	for _, tool := range []string{"ipmi_sim", "ipmitool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian packages openipmi, ipmitool)", tool)
		}
	}
	runIPMISim(t, ns, t.TempDir(), "bootyard-inband", fmt.Sprintf(`  startlan 1
    addr 127.0.0.1 623
%s%s  endlan
  serial kcs 127.0.0.1 %d codec VM
`, lanAuth, lanSettings, InBandKCSPort))
	WaitFor(t, "the in-band BMC to answer", func() bool {
		_, err := ipmitool(ns, 623, "mc", "info")
		return err == nil
	})
}
