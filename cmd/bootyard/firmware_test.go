package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/node"
)

// labServer is a `bootyard serve` running inside a test namespace with DHCP on its bridge.
type labServer struct {
	ns     *netns.NS
	url    string
	client *http.Client
	token  string
	log    *os.File
	data   string
}

// imagePath is where a test image goes: the server's images directory, the only place it
// reads image files from.
func (l *labServer) imagePath(name string) string { return filepath.Join(l.data, "images", name) }

// startLab makes a namespace with a bridge (10.77.0.1/24) and a tap for QEMU, and runs
// bootyard serve inside it with DHCP in full mode on the bridge. Nothing leaves the
// namespace: the test talks to the server with a client that dials inside it.
func startLab(t *testing.T, bin string, extra ...string) *labServer {
	t.Helper()
	return startLabIn(t, bin, t.TempDir(), extra...)
}

// startLabIn is startLab with the server's data directory given.
func startLabIn(t *testing.T, bin, data string, extra ...string) *labServer {
	t.Helper()
	ns := netns.New(t, "lab")
	ns.AddBridge("br0")
	ns.AddAddr("br0", netip.MustParsePrefix("10.77.0.1/24"))
	ns.AddTap("tap0", "br0")
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"serve", "--data", data, "--listen", "10.77.0.1:8080",
		"--dhcp-interface", "br0", "--dhcp-mode", "full", "--dhcp-range", "10.77.0.100-10.77.0.150",
		"--dhcp-router", "10.77.0.1", "--log-level", "debug"}, extra...)
	cmd := ns.Command(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGTERM first (graceful), then the context kill; only the process we started.
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("bootyard serve log (tail):\n%s", tail(string(b), 6000))
		}
	})
	l := &labServer{ns: ns, url: "http://10.77.0.1:8080", client: ns.HTTPClient(), log: logFile, data: data}
	waitFor(t, 30*time.Second, "bootyard /healthz", func() bool {
		resp, err := l.client.Get(l.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	tok, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	l.token = strings.TrimSpace(string(tok))
	return l
}

func (l *labServer) api(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, l.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// vmOptions shape a lab VM.
type vmOptions struct {
	uefi bool
	// secureBoot runs OVMF with Microsoft's keys enrolled and Secure Boot enforced
	// (implies uefi): q35 with SMM, the secure flash; see secureboot_e2e_test.go.
	secureBoot bool
	// httpBoot turns the firmware's PXE off (OVMF's IPv4PXESupport and IPv6Support
	// knobs, as a machine whose setup enables only HTTP boot), so OVMF boots the NIC
	// through UEFI HTTP boot (implies uefi).
	httpBoot bool
	disk     string // raw disk file; empty for none
	// noReboot turns the guest's reboot into QEMU's exit, so a test can read the disk
	// file between boots.
	noReboot bool
	limit    time.Duration // how long QEMU may run at most; default 10 minutes
}

// vm is a QEMU guest on the lab's tap device, under TCG: nested KVM aborts once iPXE runs.
type vm struct {
	cmd    *exec.Cmd
	serial string
	exited chan struct{}
	start  time.Time
}

// startVM boots a guest that tries the network first: SeaBIOS with Debian's iPXE ROM,
// or OVMF with its own PXE (an empty romfile), which TFTPs ipxe.efi.
func startVM(t *testing.T, ns *netns.NS, mac string, o vmOptions) *vm {
	t.Helper()
	dir := t.TempDir()
	v := &vm{serial: filepath.Join(dir, "serial.log"), exited: make(chan struct{})}
	args := []string{"-accel", "tcg", "-m", "1024", "-display", "none", "-no-user-config", "-nodefaults",
		"-serial", "file:" + v.serial,
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		// The agent's Go crypto/rand waits for a seeded CRNG; TCG has no RDRAND.
		"-device", "virtio-rng-pci"}
	if o.noReboot {
		args = append(args, "-no-reboot")
	}
	if o.disk != "" {
		args = append(args, "-drive", "if=none,id=d0,format=raw,cache=unsafe,file="+o.disk,
			"-device", "virtio-blk-pci,drive=d0,bootindex=2")
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + mac + ",bootindex=1"
	if o.httpBoot {
		args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
			"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no")
	}
	if o.uefi || o.secureBoot || o.httpBoot {
		machine, code, varsTemplate := "q35", "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"
		if o.secureBoot {
			machine, code, varsTemplate = "q35,smm=on", secureBootCode, secureBootVars
			args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		b, err := os.ReadFile(varsTemplate)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-machine", machine,
			"-drive", "if=pflash,format=raw,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,file="+vars,
			"-device", nic+",romfile=")
	} else {
		args = append(args, "-machine", "pc", "-device", nic)
	}
	if o.limit == 0 {
		o.limit = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.limit)
	v.cmd = ns.Command(ctx, "qemu-system-x86_64", args...)
	out, err := os.Create(filepath.Join(dir, "qemu.out"))
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stdout, v.cmd.Stderr = out, out
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	go func() { _ = v.cmd.Wait(); close(v.exited) }()
	t.Cleanup(func() {
		cancel() // kills the QEMU this test started, by its PID, if still running
		<-v.exited
		if t.Failed() {
			b, _ := os.ReadFile(v.serial)
			q, _ := os.ReadFile(out.Name())
			t.Logf("VM serial console (tail):\n%s\nqemu: %s", tail(string(b), 5000), tail(string(q), 1000))
		}
	})
	return v
}

func requireFirmware(t *testing.T) {
	t.Helper()
	netns.Require(t)
	for _, p := range []string{"/usr/lib/ipxe/ipxe.efi", "/usr/lib/ipxe/qemu/efi-virtio.rom", "/usr/share/OVMF/OVMF_CODE.fd"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (Debian packages ipxe, ipxe-qemu, ovmf): %v", p, err)
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (Debian package qemu-system-x86)")
	}
}

// TestFirmware_VMNetworkBootsToItsScriptAndProceedsWhenImported boots real firmware
// (SeaBIOS with Debian's iPXE ROM, and OVMF with its own PXE) against Bootyard's DHCP,
// TFTP and script endpoint: the machine appears as discovered and polls; once imported,
// the next script it fetches is the install script.
func TestFirmware_VMNetworkBootsToItsScriptAndProceedsWhenImported(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU under TCG: skipped with -short")
	}
	requireFirmware(t)
	bin := buildBinary(t)
	tests := []struct {
		name         string
		mac          string
		uefi         bool
		wantFirmware string
	}{
		{"bios", "52:54:00:77:00:01", false, "ipxe"},
		{"uefi", "52:54:00:77:00:02", true, "uefi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lab := startLab(t, bin)
			// A default image, so an imported node has something to install.
			img := lab.imagePath("tiny.img")
			if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			if code := lab.api(t, "POST", "/api/v1/images", `{"name":"tiny","file":"`+img+`","default":true}`, nil); code != 201 {
				t.Fatalf("add image: %d", code)
			}
			v := startVM(t, lab.ns, tc.mac, vmOptions{uefi: tc.uefi})
			var n node.Node
			waitFor(t, 4*time.Minute, "the VM to fetch its script and be discovered", func() bool {
				return lab.api(t, "GET", "/api/v1/nodes/"+tc.mac, "", &n) == 200
			})
			if n.State != node.StateDiscovered {
				t.Fatalf("unknown machine recorded as %s, want discovered", n.State)
			}
			if tc.uefi && n.Boot.Arch != 7 {
				t.Errorf("UEFI machine recorded as %+v, want arch 7 (x86-64 UEFI)", n.Boot)
			}
			if !tc.uefi && n.Boot.Arch != 0 {
				t.Errorf("BIOS machine recorded as %+v, want arch 0", n.Boot)
			}
			// Import while the machine polls; it must proceed without being touched.
			if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+tc.mac+`"],"role":"worker","name":"fw-`+tc.name+`"}`, nil); code != 201 {
				t.Fatalf("import: %d", code)
			}
			waitFor(t, 2*time.Minute, "the install script after import", func() bool {
				var got node.Node
				return lab.api(t, "GET", "/api/v1/nodes/fw-"+tc.name, "", &got) == 200 && got.State == node.StateProvisioning
			})
			var events []node.Event
			lab.api(t, "GET", "/api/v1/nodes/fw-"+tc.name+"/events", "", &events)
			var kinds []string
			sawDiscovery, sawInstall := false, false
			for _, e := range events {
				kinds = append(kinds, fmt.Sprintf("%s:%s→%s:%s", e.Type, e.From, e.To, e.Reason))
				if e.To == node.StateDiscovered && strings.Contains(e.Reason, "network boot") {
					sawDiscovery = true
				}
				if e.From == node.StateRegistered && e.To == node.StateProvisioning && strings.Contains(e.Reason, "install script") {
					sawInstall = true
				}
			}
			if !sawDiscovery || !sawInstall {
				t.Errorf("events lack the discovery and the install script: %q", kinds)
			}
			serial, _ := os.ReadFile(v.serial)
			if tc.uefi && !strings.Contains(string(serial), "iPXE") {
				t.Errorf("serial console never shows iPXE running:\n%s", tail(string(serial), 2000))
			}
		})
	}
}
