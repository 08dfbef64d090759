package boot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/ipxe"
)

// TestBoot_QEMUFirmwareReachesItsScript boots QEMU machines on a tap in a test namespace
// and waits for the HTTP request for <advertise>/boot.ipxe?mac=<its MAC>: it arrives
// only if real firmware accepted every DHCP answer on the way.
//
//   - bios-ipxe-rom: SeaBIOS runs the NIC's iPXE ROM (Debian's ipxe-qemu), which asks
//     DHCP as iPXE and is given the script URL at once.
//   - uefi-pxe-chain: OVMF with no iPXE ROM uses its own PXE (arch 7), is given ipxe.efi
//     over TFTP from siaddr, and the iPXE it loads asks again and gets the script.
func TestBoot_QEMUFirmwareReachesItsScript(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: four QEMU boots under TCG take about 95s")
	}
	netns.Require(t)
	requireTool(t, "qemu-system-x86_64")
	tests := []struct {
		name      string
		mac       string
		extra     []string // firmware and NIC arguments
		needsFile string   // skip unless this exists
		wantFirst string   // firmware of the first recorded boot
		mode      DHCPMode // proxy runs dnsmasq on the same bridge as the address server
	}{
		{"bios-ipxe-rom", "52:54:00:7e:57:01", []string{"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:7e:57:01"}, "", "ipxe", ModeFull},
		{"uefi-pxe-chain", "52:54:00:7e:57:02", []string{"-bios", "/usr/share/ovmf/OVMF.fd",
			"-device", "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:7e:57:02"}, "/usr/share/ovmf/OVMF.fd", "uefi", ModeFull},
		{"proxy-bios-ipxe-rom", "52:54:00:7e:57:03", []string{"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:7e:57:03"}, "", "ipxe", ModeProxy},
		{"proxy-uefi-pxe-chain", "52:54:00:7e:57:04", []string{"-bios", "/usr/share/ovmf/OVMF.fd",
			"-device", "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:7e:57:04"}, "/usr/share/ovmf/OVMF.fd", "uefi", ModeProxy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsFile != "" {
				if _, err := os.Stat(tt.needsFile); err != nil {
					t.Skipf("%s is missing (Debian package ovmf)", tt.needsFile)
				}
			}
			if tt.mode == ModeProxy {
				requireTool(t, "dnsmasq")
			}
			bootQEMU(t, tt.mac, tt.extra, tt.wantFirst, tt.mode)
		})
	}
}

func bootQEMU(t *testing.T, vmMAC string, extra []string, wantFirst string, mode DHCPMode) {
	ns := netns.New(t, "pxe")
	ns.AddBridge("br0")
	ns.AddAddr("br0", netip.MustParsePrefix("10.77.0.1/24"))
	ns.AddTap("tap0", "br0")

	l := &lab{t: t, srv: ns, dir: t.TempDir(), log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.inv = openTestStore(t, l.dir)
	cfg := testConfig(mode)
	cfg.Interface = "br0"
	cfg.Sightings = NewSightings(0, 0, nil)
	s, _ := l.start(cfg)
	tftp := startTFTP(t, ns)
	if mode == ModeProxy {
		startDnsmasq(t, ns, l.dir)
	}

	fetched := make(chan string, 4)
	fetchedFrom := make(chan netip.AddrPort, 4)
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.77.0.1:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case fetched <- r.URL.String():
			fetchedFrom <- netip.MustParseAddrPort(r.RemoteAddr)
		default:
		}
		// Keep the machine idle until the test stops it.
		fmt.Fprint(w, "#!ipxe\necho bootyard test script\nsleep 60\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	serial := filepath.Join(l.dir, "serial.log")
	// TCG, not KVM: under this host's KVM the iPXE ROM stalls in its Ctrl-B wait.
	// graphics=off sends SeaBIOS and iPXE's console to the serial file for diagnosis.
	args := append([]string{"-accel", "tcg", "-m", "512", "-smp", "1", "-no-reboot",
		"-machine", "graphics=off", "-display", "none", "-monitor", "none", "-serial", "file:" + serial, "-boot", "n",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"}, extra...)
	qemu := ns.Command(ctx, "qemu-system-x86_64", args...)
	var stderr bytes.Buffer
	qemu.Stderr = &stderr
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = qemu.Wait(); close(exited) }()
	defer func() {
		qemu.Process.Kill() // only the QEMU this test started, by its PID
		<-exited
	}()

	select {
	case raw := <-fetched:
		// iPXE percent-encodes the colons of the query it was given.
		u, err := url.Parse(raw)
		if err != nil || u.Path != "/boot.ipxe" || u.Query().Get("mac") != vmMAC {
			t.Fatalf("iPXE fetched %q, want /boot.ipxe?mac=%s", raw, vmMAC)
		}
		// The address the script request came from is one Bootyard's own DHCP saw the
		// machine use: in proxy mode, where dnsmasq hands out the address, this is what
		// lets the machine endpoints tell the node from another host.
		if from := (<-fetchedFrom).Addr().Unmap(); !cfg.Sightings.Seen(mustMAC(vmMAC), from) {
			t.Fatalf("the script request came from %s, which Bootyard's DHCP (%s mode) never saw %s use", from, mode, vmMAC)
		}
	case <-exited:
		b, _ := os.ReadFile(serial)
		t.Fatalf("qemu exited before fetching its script: %v\ndhcp stats %+v\nstderr: %s\nserial:\n%s", waitErr, s.Stats(), stderr.Bytes(), b)
	case <-ctx.Done():
		b, _ := os.ReadFile(serial)
		t.Fatalf("the firmware never fetched its script\ndhcp stats %+v\nserial:\n%s", s.Stats(), b)
	}
	// EDK2's PXE client asks for an RFC 7440 windowsize (PcdPxeTftpWindowSize, 4 by
	// default): its ipxe.efi must have come with a window, not one block per ACK.
	if wantFirst == "uefi" {
		if st := tftp.Stats(); st.Served == 0 || st.WindowSize.Sum <= st.WindowSize.Count {
			t.Errorf("tftp stats %+v: want ipxe.efi served with a window larger than 1", st)
		}
	}
	lease, err := l.inv.LeaseForMAC(context.Background(), mustMAC(vmMAC))
	switch {
	case mode == ModeFull && (err != nil || !cfg.Range.Contains(lease.IP)):
		t.Fatalf("lease for the VM: %+v, %v", lease, err)
	case mode == ModeProxy && err == nil:
		t.Fatalf("proxy mode stored a lease: %+v", lease)
	case mode == ModeProxy && s.Stats().ProxyReplies == 0:
		t.Fatalf("no proxy replies: %+v", s.Stats())
	}
	var firmwares []string
	for range 200 {
		firmwares = firmwares[:0]
		for _, r := range l.inv.recorded() {
			if r.mac == mustMAC(vmMAC) {
				firmwares = append(firmwares, r.seen.Firmware)
			}
		}
		if len(firmwares) > 0 && firmwares[len(firmwares)-1] == "ipxe" {
			break
		}
		waitABit()
	}
	if len(firmwares) == 0 || firmwares[0] != wantFirst || firmwares[len(firmwares)-1] != "ipxe" {
		t.Fatalf("recorded firmwares %v, want %s first and ipxe last", firmwares, wantFirst)
	}
}

// startDnsmasq runs dnsmasq as the network's own address server, in its own namespace
// on ns's bridge, as on a network where Bootyard must not hand out addresses.
func startDnsmasq(t *testing.T, lan *netns.NS, dir string) {
	dns := netns.New(t, "dns")
	netns.Link(t, lan, "ldns", dns, "bdns")
	lan.Enslave("ldns", "br0")
	dns.AddAddr("bdns", netip.MustParsePrefix("10.77.0.2/24"))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := dns.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--interface=bdns", "--bind-interfaces",
		"--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,1h", "--port=0", "--user=root", "--no-ping",
		"--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"))
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // only the dnsmasq this test started
		cmd.Wait()
		cancel()
	})
}

// startTFTP serves Debian's iPXE binaries on 10.77.0.1:69 inside ns.
func startTFTP(t *testing.T, ns *netns.NS) *TFTPServer {
	bins, err := ipxe.OpenBinaries("/usr/lib/ipxe")
	if err != nil {
		t.Skipf("iPXE binaries (Debian package ipxe): %v", err)
	}
	tftp, err := NewTFTP(TFTPConfig{Listen: "10.77.0.1:69"}, bins, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Run opens its sockets on the calling thread: keep that thread in the namespace.
	go func() { done <- ns.Do(func() error { return tftp.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tftp: %v", err)
		}
	})
	return tftp
}
