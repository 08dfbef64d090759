package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The demo network lives only inside its namespace: nothing here touches a real interface.
const (
	labAddr   = "10.99.0.1"
	labPrefix = "10.99.0.1/24"
	labRange  = "10.99.0.100-10.99.0.150"
)

// machine is one demo VM.
type machine struct {
	name, mac, role, tap string
	uefi                 bool
}

var machines = []machine{
	{name: "demo-bios", mac: "52:54:00:99:00:01", role: "server", tap: "tap0"},
	{name: "demo-uefi", mac: "52:54:00:99:00:02", role: "worker", tap: "tap1", uefi: true},
}

// lab is the demo's namespace and the processes it started inside it.
type lab struct {
	name  string
	log   *slog.Logger
	procs []*exec.Cmd // stopped in reverse order by close
}

func newLab(name string, log *slog.Logger) (*lab, error) {
	l := &lab{name: name, log: log}
	if err := ipCmd("netns", "add", name); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", labPrefix, "dev", "br0"},
		{"link", "set", "br0", "up"},
	}
	for _, m := range machines {
		steps = append(steps, []string{"tuntap", "add", "dev", m.tap, "mode", "tap"},
			[]string{"link", "set", m.tap, "master", "br0"}, []string{"link", "set", m.tap, "up"})
	}
	for _, s := range steps {
		if err := ipCmd(append([]string{"-n", name}, s...)...); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func ipCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// start runs a program inside the namespace; close stops it.
func (l *lab) start(logFile string, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.name, name}, args...)...)
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l.procs = append(l.procs, cmd)
	return cmd, nil
}

// bootyardProc is the server and its admin token.
type bootyardProc struct{ token string }

func (l *lab) startBootyard(bin, data string) (*bootyardProc, error) {
	if _, err := l.start(filepath.Join(data, "bootyard.log"), bin, "serve", "--data", data,
		"--listen", labAddr+":8080", "--dhcp-interface", "br0", "--dhcp-mode", "full",
		"--dhcp-range", labRange, "--dhcp-router", labAddr); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(data, "admin-token"))
		if err == nil && len(b) > 0 {
			return &bootyardProc{token: strings.TrimSpace(string(b))}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bootyard did not start: see %s", filepath.Join(data, "bootyard.log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startVM boots one demo machine under TCG (nested KVM aborts once iPXE runs) with an
// empty sparse disk, network first; a UEFI machine with secureBoot runs firmware that
// enforces it.
func (l *lab) startVM(ctx context.Context, m machine, data string, secureBoot bool) error {
	disk := filepath.Join(data, m.name+".disk")
	f, err := os.Create(disk)
	if err != nil {
		return err
	}
	if err := f.Truncate(512 << 20); err != nil {
		f.Close()
		return err
	}
	f.Close()
	args := []string{"-accel", "tcg", "-m", "1024", "-display", "none", "-no-user-config", "-nodefaults",
		"-serial", "file:" + filepath.Join(data, m.name+".serial"),
		"-netdev", "tap,id=n0,ifname=" + m.tap + ",script=no,downscript=no",
		"-drive", "if=none,id=d0,format=raw,cache=unsafe,file=" + disk,
		"-device", "virtio-blk-pci,drive=d0,bootindex=2",
		// The agent's crypto/rand needs a seeded CRNG; TCG offers no RDRAND.
		"-device", "virtio-rng-pci"}
	if m.uefi {
		fw, err := uefiFirmware(filepath.Join(data, m.name+".vars"), secureBoot)
		if err != nil {
			return err
		}
		args = append(args, fw...)
		// An empty romfile: the firmware's own PXE, which TFTPs ipxe.efi (or, with
		// Secure Boot, shim) from Bootyard.
		args = append(args, "-device", "virtio-net-pci,netdev=n0,mac="+m.mac+",romfile=,bootindex=1")
	} else {
		args = append(args, "-machine", "pc", "-device", "virtio-net-pci,netdev=n0,mac="+m.mac+",bootindex=1")
	}
	_, err = l.start(filepath.Join(data, m.name+".qemu.log"), "qemu-system-x86_64", args...)
	return err
}

// Debian's OVMF (package ovmf): plain, and built with Secure Boot and SMM, whose
// variable store has Microsoft's keys enrolled and Secure Boot enforced.
const (
	ovmfCode           = "/usr/share/OVMF/OVMF_CODE.fd"
	ovmfVars           = "/usr/share/OVMF/OVMF_VARS.fd"
	ovmfSecureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	ovmfSecureBootVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// uefiFirmware returns QEMU's machine and firmware arguments for a UEFI machine whose
// variable store is a fresh copy at vars. With secureBoot the machine is q35 with SMM
// and the flash is secure: the Secure Boot build of OVMF refuses to start otherwise, and
// without SMM a guest could rewrite the keys.
func uefiFirmware(vars string, secureBoot bool) ([]string, error) {
	machine, code, template := "q35", ovmfCode, ovmfVars
	var extra []string
	if secureBoot {
		machine, code, template = "q35,smm=on", ovmfSecureBootCode, ovmfSecureBootVars
		extra = []string{"-global", "driver=cfi.pflash01,property=secure,value=on"}
	}
	b, err := os.ReadFile(template)
	if err != nil {
		return nil, fmt.Errorf("OVMF (Debian package ovmf): %w", err)
	}
	if err := os.WriteFile(vars, b, 0o600); err != nil {
		return nil, err
	}
	return append(extra, "-machine", machine,
		"-drive", "if=pflash,format=raw,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,file="+vars), nil
}

// close stops what the demo started (by PID, newest first) and deletes the namespace,
// which removes the bridge and taps with it.
func (l *lab) close() {
	for i := len(l.procs) - 1; i >= 0; i-- {
		p := l.procs[i]
		_ = p.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	if err := ipCmd("netns", "del", l.name); err != nil {
		l.log.Error("remove the demo namespace", slog.String("netns", l.name), slog.Any("err", err))
	}
}
