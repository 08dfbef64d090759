package boot

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/boot/netns"
)

func TestDHCP_RelayedDiscoverIsAnsweredToTheRelay(t *testing.T) {
	l := newLab(t)
	// The client namespace plays the relay: 10.77.0.2 on the shared link, 10.88.0.1 (its
	// address on the relayed subnet) on lo, and the server routes 10.88.0.0/24 through it.
	l.cli.AddAddr("bcli", netip.MustParsePrefix("10.77.0.2/24"))
	l.cli.IP("addr", "add", "10.88.0.1/32", "dev", "lo")
	l.srv.IP("route", "add", "10.88.0.0/24", "via", "10.77.0.2", "dev", "bsrv")
	cfg := labConfig(ModeFull)
	cfg.Relayed = []RelayedSubnet{{Subnet: netip.MustParsePrefix("10.88.0.0/24"),
		Range:  Range{Start: netip.MustParseAddr("10.88.0.10"), End: netip.MustParseAddr("10.88.0.20")},
		Router: netip.MustParseAddr("10.88.0.1")}}
	s, _ := l.start(cfg)

	var relay *net.UDPConn
	if err := l.cli.Do(func() error {
		var err error
		relay, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.88.0.1"), Port: 67})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	discover := discoverFrom(t, mustMAC("52:54:00:88:00:01"), dhcpv4.WithRelay(net.ParseIP("10.88.0.1")))
	if _, err := relay.WriteToUDP(discover.ToBytes(), &net.UDPAddr{IP: net.ParseIP("10.77.0.1"), Port: 67}); err != nil {
		t.Fatal(err)
	}
	relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := relay.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("relay got no reply: %v (stats %+v)", err, s.Stats())
	}
	offer, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !cfg.Relayed[0].Range.Contains(addrOf(offer.YourIPAddr)) {
		t.Fatalf("relay got %s %s, want an OFFER from %s", offer.MessageType(), offer.YourIPAddr, cfg.Relayed[0].Range)
	}
	if from.Addr() != netip.MustParseAddr("10.77.0.1") || !offer.GatewayIPAddr.Equal(net.ParseIP("10.88.0.1")) {
		t.Fatalf("reply from %s giaddr %s", from, offer.GatewayIPAddr)
	}
}

// TestProxyDHCP_BesideDnsmasq: dnsmasq hands out the address, Bootyard the boot file, on
// one bridged link, as on a network whose DHCP server Bootyard must not replace.
func TestProxyDHCP_BesideDnsmasq(t *testing.T) {
	requireTool(t, "dnsmasq")
	lan, srv, dns, cli := netns.New(t, "lan"), netns.New(t, "psrv"), netns.New(t, "dns"), netns.New(t, "pcli")
	lan.AddBridge("br0")
	for _, p := range []struct {
		ns       *netns.NS
		lanSide  string
		nodeSide string
	}{{srv, "lsrv", "bsrv"}, {dns, "ldns", "bdns"}, {cli, "lcli", "bcli"}} {
		netns.Link(t, lan, p.lanSide, p.ns, p.nodeSide)
		lan.Enslave(p.lanSide, "br0")
	}
	srv.AddAddr("bsrv", netip.MustParsePrefix("10.77.0.1/24"))
	dns.AddAddr("bdns", netip.MustParsePrefix("10.77.0.2/24"))

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dnsmasq := dns.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--interface=bdns", "--bind-interfaces",
		"--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,1h", "--port=0", "--user=root", "--no-ping",
		"--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"))
	dnsmasq.Stdout, dnsmasq.Stderr = t.Output(), t.Output()
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dnsmasq.Process.Signal(syscall.SIGTERM); dnsmasq.Wait() }()

	l := &lab{t: t, srv: srv, cli: cli, dir: dir, inv: openTestStore(t, dir)}
	s, _ := l.start(labConfig(ModeProxy))
	conn := l.clientConn()

	mac := mustMAC("52:54:00:99:00:01")
	cli.IP("link", "set", "bcli", "address", mac.String())
	pxe := []dhcpv4.Modifier{dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))}
	discover := discoverFrom(t, mac, pxe...)
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

	// Collect both offers: dnsmasq's address and Bootyard's boot file.
	var addrOffer, bootOffer *dhcpv4.DHCPv4
	replies := make(chan *dhcpv4.DHCPv4, 16)
	go func() {
		buf := make([]byte, 1500)
		for {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				close(replies)
				return
			}
			if m, err := dhcpv4.FromBytes(buf[:n]); err == nil {
				replies <- m
			}
		}
	}()
	deadline := time.After(10 * time.Second)
	for attempt := 0; addrOffer == nil || bootOffer == nil; attempt++ {
		if attempt%10 == 0 { // resend every ~second, as firmware does
			if _, err := conn.WriteToUDP(discover.ToBytes(), bcast); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case m, ok := <-replies:
			if !ok {
				t.Fatal("client socket closed")
			}
			if m.MessageType() != dhcpv4.MessageTypeOffer || m.TransactionID != discover.TransactionID {
				continue
			}
			if m.YourIPAddr.IsUnspecified() {
				bootOffer = m
			} else {
				addrOffer = m
			}
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("offers: address %v boot %v (bootyard stats %+v)", addrOffer != nil, bootOffer != nil, s.Stats())
		}
	}
	if !addrOffer.ServerIdentifier().Equal(net.ParseIP("10.77.0.2")) || addrOffer.BootFileNameOption() != "" {
		t.Fatalf("address offer from %s with file %q", addrOffer.ServerIdentifier(), addrOffer.BootFileNameOption())
	}
	if bootOffer.BootFileNameOption() != "ipxe.efi" || bootOffer.ClassIdentifier() != "PXEClient" ||
		!bootOffer.ServerIPAddr.Equal(net.ParseIP("10.77.0.1")) || len(bootOffer.Options.Get(dhcpv4.OptionVendorSpecificInformation)) == 0 {
		t.Fatalf("proxy offer: file %q class %q siaddr %s", bootOffer.BootFileNameOption(), bootOffer.ClassIdentifier(), bootOffer.ServerIPAddr)
	}

	// Take the address from dnsmasq, then ask Bootyard on port 4011 as a PXE ROM does.
	req, err := dhcpv4.NewRequestFromOffer(addrOffer, pxe...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(req.ToBytes(), bcast); err != nil {
		t.Fatal(err)
	}
	ack := awaitType(t, replies, req.TransactionID, dhcpv4.MessageTypeAck)
	leased := addrOf(ack.YourIPAddr)
	if !ack.ServerIdentifier().Equal(net.ParseIP("10.77.0.2")) {
		t.Fatalf("address ACK from %s, want dnsmasq", ack.ServerIdentifier())
	}
	cli.AddAddr("bcli", netip.PrefixFrom(leased, 24))
	proxyReq, err := dhcpv4.New(append(pxe[1:], dhcpv4.WithHwAddr(mac.HardwareAddr()),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(leased.AsSlice()))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(proxyReq.ToBytes(), &net.UDPAddr{IP: net.ParseIP("10.77.0.1"), Port: 4011}); err != nil {
		t.Fatal(err)
	}
	boot := awaitType(t, replies, proxyReq.TransactionID, dhcpv4.MessageTypeAck)
	if boot.BootFileNameOption() != "ipxe.efi" || !boot.YourIPAddr.IsUnspecified() {
		t.Fatalf("port 4011 ACK: file %q yiaddr %s", boot.BootFileNameOption(), boot.YourIPAddr)
	}
}

func awaitType(t *testing.T, replies <-chan *dhcpv4.DHCPv4, xid dhcpv4.TransactionID, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-replies:
			if !ok {
				t.Fatalf("no %s: socket closed", want)
			}
			if m.TransactionID == xid && m.MessageType() == want {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s within 10s", want)
		}
	}
}
