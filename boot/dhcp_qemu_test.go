package boot

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
)

// TestDHCP_QEMUiPXEFetchesItsScriptFromTheOfferedURL boots a QEMU machine whose NIC ROM
// is iPXE (Debian's ipxe-qemu) on a tap in a test namespace. Real firmware must accept
// the DHCP answer, take the address and fetch <advertise>/boot.ipxe?mac=<its MAC>: the
// HTTP request proves the whole exchange worked.
func TestDHCP_QEMUiPXEFetchesItsScriptFromTheOfferedURL(t *testing.T) {
	netns.Require(t)
	requireTool(t, "qemu-system-x86_64")
	const vmMAC = "52:54:00:7e:57:01"
	ns := netns.New(t, "pxe")
	ns.AddBridge("br0")
	ns.AddAddr("br0", netip.MustParsePrefix("10.77.0.1/24"))
	ns.AddTap("tap0", "br0")

	l := &lab{t: t, srv: ns, dir: t.TempDir()}
	l.inv = openTestStore(t, l.dir)
	cfg := testConfig(ModeFull)
	cfg.Interface = "br0"
	s, _ := l.start(cfg)

	fetched := make(chan string, 4)
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
		default:
		}
		// Keep the machine idle until the test stops it.
		fmt.Fprint(w, "#!ipxe\necho bootyard test script\nsleep 60\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	serial := filepath.Join(l.dir, "serial.log")
	// TCG, not KVM: under this host's KVM the iPXE ROM stalls in its Ctrl-B wait.
	// graphics=off sends SeaBIOS and iPXE's console to the serial file for diagnosis.
	qemu := ns.Command(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", "1", "-no-reboot",
		"-machine", "graphics=off", "-display", "none", "-monitor", "none", "-serial", "file:"+serial, "-boot", "n",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+vmMAC)
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
	case <-exited:
		b, _ := os.ReadFile(serial)
		t.Fatalf("qemu exited before fetching its script: %v\ndhcp stats %+v\nstderr: %s\nserial:\n%s", waitErr, s.Stats(), stderr.Bytes(), b)
	case <-ctx.Done():
		b, _ := os.ReadFile(serial)
		t.Fatalf("iPXE never fetched its script\ndhcp stats %+v\nserial:\n%s", s.Stats(), b)
	}
	lease, err := l.inv.LeaseForMAC(context.Background(), mustMAC(vmMAC))
	if err != nil || !cfg.Range.Contains(lease.IP) {
		t.Fatalf("lease for the VM: %+v, %v", lease, err)
	}
	var ipxeSeen bool
	for range 200 {
		for _, r := range l.inv.recorded() {
			ipxeSeen = ipxeSeen || (r.mac == mustMAC(vmMAC) && r.seen.Firmware == "ipxe")
		}
		if ipxeSeen {
			break
		}
		waitABit()
	}
	if !ipxeSeen {
		t.Fatalf("the VM was not recorded as an iPXE client: %+v", l.inv.recorded())
	}
}
