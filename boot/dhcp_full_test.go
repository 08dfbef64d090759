package boot

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/node"
)

func TestDHCP_DORALeaseIsDurableBeforeTheACK(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	mac := mustMAC("52:54:00:00:00:01")

	ack := dora(t, s, mac, dhcpv4.WithOption(dhcpv4.OptHostName("alpha")))
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("got %s, want ACK", ack.MessageType())
	}
	ip := addrOf(ack.YourIPAddr)
	if !testConfig(ModeFull).Range.Contains(ip) {
		t.Fatalf("ACKed %s, outside the range", ip)
	}
	// The handler returned the ACK: the store must already have the lease.
	l, err := inv.LeaseForMAC(context.Background(), mac)
	if err != nil || l.IP != ip || l.Hostname != "alpha" {
		t.Fatalf("store after ACK: %+v, %v; want %s", l, err, ip)
	}
	if got := ack.IPAddressLeaseTime(0); got != time.Hour {
		t.Fatalf("lease time %s, want 1h", got)
	}
	if r := ack.Router(); len(r) != 1 || !r[0].Equal(net.ParseIP("10.77.0.1")) {
		t.Fatalf("router %v", r)
	}
	if ack.BootFileName != "" || ack.Options.Has(dhcpv4.OptionBootfileName) {
		t.Fatalf("a plain DHCP client got a boot file %q", ack.BootFileName)
	}
}

func TestDHCP_ReservedAddressIsNeverOfferedFromThePool(t *testing.T) {
	ctx := context.Background()
	inv := openTestStore(t, t.TempDir())
	cfg := testConfig(ModeFull)
	cfg.Range = Range{Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.103")}
	static := node.Node{Name: "pinned", MACs: []node.MAC{mustMAC("52:54:00:aa:00:01")}, Role: node.RoleWorker,
		IP: netip.MustParsePrefix("10.77.0.101/24")}
	if _, err := inv.ImportNode(ctx, static, "test"); err != nil {
		t.Fatal(err)
	}
	s := socketless(t, cfg, inv)

	got := map[netip.Addr]bool{}
	for i := range 3 {
		ack := dora(t, s, node.MAC{2, 0, 0, 0, 0, byte(i + 1)})
		got[addrOf(ack.YourIPAddr)] = true
	}
	if got[netip.MustParseAddr("10.77.0.101")] {
		t.Fatalf("pool handed out the reserved address: %v", got)
	}
	// The range is now full except the reservation: a fourth client gets nothing.
	if offer, _ := exchange(t, s, discoverFrom(t, node.MAC{2, 0, 0, 0, 0, 9}), 67); offer != nil {
		t.Fatalf("exhausted pool offered %s", offer.YourIPAddr)
	}
	// The owner gets exactly its address, with its own prefix length.
	ack := dora(t, s, static.MACs[0])
	if addrOf(ack.YourIPAddr) != static.IP.Addr() || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("static node got %s %s, want ACK %s", ack.MessageType(), ack.YourIPAddr, static.IP.Addr())
	}
}

func TestDHCP_ReservationMadeAtRuntimeIsHonouredAfterRefresh(t *testing.T) {
	ctx := context.Background()
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	mac := mustMAC("52:54:00:bb:00:01")
	first := dora(t, s, mac)
	if _, err := inv.ImportNode(ctx, node.Node{Name: "late", MACs: []node.MAC{mac}, Role: node.RoleWorker,
		IP: netip.MustParsePrefix("10.77.0.40/24")}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.RefreshReservations(ctx); err != nil {
		t.Fatal(err)
	}
	// Renewing the old dynamic address is refused: the node must move to its static one.
	renew := requestFor(t, first)
	renew.Options.Del(dhcpv4.OptionServerIdentifier)
	renew.Options.Del(dhcpv4.OptionRequestedIPAddress)
	renew.ClientIPAddr = first.YourIPAddr
	if nak, _ := exchange(t, s, renew, 67); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("renewal of the old dynamic address: got %v, want NAK", nak)
	}
	if ack := dora(t, s, mac); addrOf(ack.YourIPAddr) != netip.MustParseAddr("10.77.0.40") {
		t.Fatalf("after import got %s, want 10.77.0.40", ack.YourIPAddr)
	}
}

func TestDHCP_RequestsFollowRFC2131(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	owner, other := mustMAC("52:54:00:cc:00:01"), mustMAC("52:54:00:cc:00:02")
	ack := dora(t, s, owner)
	ownerIP := ack.YourIPAddr
	serverID := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1")))

	build := func(mac node.MAC, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac.HardwareAddr()),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name string
		req  *dhcpv4.DHCPv4
		want dhcpv4.MessageType // 0: no reply
	}{
		{"renewing its own address is ACKed", build(owner, dhcpv4.WithClientIP(ownerIP)), dhcpv4.MessageTypeAck},
		{"init-reboot with its own address is ACKed", build(owner, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ownerIP))), dhcpv4.MessageTypeAck},
		{"another client's address gets NAK", build(other, serverID, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ownerIP))), dhcpv4.MessageTypeNak},
		{"renewing someone else's address gets NAK", build(other, dhcpv4.WithClientIP(ownerIP)), dhcpv4.MessageTypeNak},
		{"an address on another subnet gets NAK", build(other, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.5")))), dhcpv4.MessageTypeNak},
		{"an address outside the range gets NAK", build(other, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.20")))), dhcpv4.MessageTypeNak},
		{"selecting another server is silent", build(other, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.2"))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.150")))), 0},
		{"a request naming no address is dropped", build(other), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, _ := exchange(t, s, tt.req, 67)
			switch {
			case tt.want == 0 && reply != nil:
				t.Fatalf("got %s, want silence", reply.MessageType())
			case tt.want != 0 && (reply == nil || reply.MessageType() != tt.want):
				t.Fatalf("got %v, want %s", reply, tt.want)
			}
		})
	}
}

func TestDHCP_ReleaseAndDecline(t *testing.T) {
	ctx := context.Background()
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	a, b := mustMAC("52:54:00:dd:00:01"), mustMAC("52:54:00:dd:00:02")

	ack := dora(t, s, a)
	ip := addrOf(ack.YourIPAddr)
	rel, err := dhcpv4.NewReleaseFromACK(ack)
	if err != nil {
		t.Fatal(err)
	}
	// A client releases from its own address (RFC 2131 §4.4.6).
	if reply, _ := exchangeFrom(t, s, rel, 67, netip.AddrPortFrom(ip, 68)); reply != nil {
		t.Fatalf("RELEASE got a reply %s", reply.MessageType())
	}
	if _, err := inv.MACForIP(ctx, ip); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("released address still leased in the store: %v", err)
	}
	if again := dora(t, s, a); addrOf(again.YourIPAddr) != ip {
		t.Fatalf("after release the client got %s, want its old %s", again.YourIPAddr, ip)
	}

	// b declines its address: it must not be offered again, to b or anyone.
	ackB := dora(t, s, b)
	bad := addrOf(ackB.YourIPAddr)
	decline, err := dhcpv4.New(dhcpv4.WithHwAddr(b.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ackB.YourIPAddr)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, s, decline, 67)
	for i := range 5 {
		mac := b
		if i > 0 {
			mac = node.MAC{2, 0, 0, 0, 1, byte(i)}
		}
		if got := addrOf(dora(t, s, mac).YourIPAddr); got == bad {
			t.Fatalf("declined %s offered again to %s", bad, mac)
		}
	}
	if st := s.Stats(); st.Declines != 1 || st.Releases != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDHCP_RestartNeverOffersALeasedAddress(t *testing.T) {
	dir := t.TempDir()
	inv := openTestStore(t, dir)
	s := socketless(t, testConfig(ModeFull), inv)
	leased := map[netip.Addr]node.MAC{}
	for i := range 20 {
		mac := node.MAC{2, 0, 0, 0, 2, byte(i)}
		leased[addrOf(dora(t, s, mac).YourIPAddr)] = mac
	}
	// A new server on the same bbolt file, as after a restart.
	s2 := socketless(t, testConfig(ModeFull), inv)
	for i := range 20 {
		mac := node.MAC{2, 0, 0, 0, 3, byte(i)}
		ip := addrOf(dora(t, s2, mac).YourIPAddr)
		if owner, ok := leased[ip]; ok {
			t.Fatalf("after restart %s was given to %s, but it is leased to %s", ip, mac, owner)
		}
	}
	// And an old client keeps its address.
	for ip, mac := range leased {
		if got := addrOf(dora(t, s2, mac).YourIPAddr); got != ip {
			t.Fatalf("after restart %s got %s, want its lease %s", mac, got, ip)
		}
		break
	}
}

func TestDHCP_RelayedRequestIsAnsweredToTheRelayFromItsSubnet(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	cfg := testConfig(ModeFull)
	cfg.Relayed = []RelayedSubnet{{Subnet: netip.MustParsePrefix("10.88.0.0/24"),
		Range:  Range{Start: netip.MustParseAddr("10.88.0.10"), End: netip.MustParseAddr("10.88.0.20")},
		Router: netip.MustParseAddr("10.88.0.1")}}
	s := socketless(t, cfg, inv)
	relay := dhcpv4.WithRelay(net.ParseIP("10.88.0.1"))
	offer, dst := exchange(t, s, discoverFrom(t, mustMAC("52:54:00:ee:00:01"), relay), 67)
	if offer == nil || !cfg.Relayed[0].Range.Contains(addrOf(offer.YourIPAddr)) {
		t.Fatalf("relayed offer %v, want an address in %s", offer, cfg.Relayed[0].Range)
	}
	if dst != netip.MustParseAddrPort("10.88.0.1:67") {
		t.Fatalf("reply sent to %s, want the relay 10.88.0.1:67", dst)
	}
	if !offer.GatewayIPAddr.Equal(net.ParseIP("10.88.0.1")) {
		t.Fatalf("giaddr not kept: %s", offer.GatewayIPAddr)
	}
	// A relay from a subnet nobody configured is counted and dropped.
	if offer, _ := exchange(t, s, discoverFrom(t, mustMAC("52:54:00:ee:00:02"), dhcpv4.WithRelay(net.ParseIP("10.99.0.1"))), 67); offer != nil {
		t.Fatalf("unknown relay subnet answered: %s", offer.YourIPAddr)
	}
	if s.Stats().NoSubnet != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

func TestDHCP_MalformedPacketsAreCountedNotAnswered(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	good := discoverFrom(t, mustMAC("52:54:00:ff:00:01")).ToBytes()
	badCookie := append([]byte(nil), good...)
	badCookie[236] = 0
	overrun := append([]byte(nil), good[:240]...)
	overrun = append(overrun, 53, 1, 1, 12, 200, 'x') // option 12 claims 200 bytes, has 1
	reply := append([]byte(nil), good...)
	reply[0] = 2
	tests := []struct {
		name   string
		packet []byte
	}{
		{"empty", nil},
		{"truncated header", good[:100]},
		{"bad magic cookie", badCookie},
		{"option longer than the packet", overrun},
		{"a BOOTREPLY", reply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, ok := s.handle(context.Background(), tt.packet, 67, netip.AddrPort{}); ok {
				t.Fatal("answered a bad packet")
			}
		})
	}
	st := s.Stats()
	if st.Malformed != 4 || st.Ignored != 1 {
		t.Fatalf("malformed %d ignored %d, want 4 and 1", st.Malformed, st.Ignored)
	}
	withUnknown := discoverFrom(t, mustMAC("52:54:00:ff:00:02"), dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(222), []byte{1}))
	if offer, _ := exchange(t, s, withUnknown, 67); offer == nil || offer.Options.Has(dhcpv4.GenericOptionCode(222)) {
		t.Fatalf("unknown option: offer %v", offer)
	}
	if s.Stats().UnknownOptions != 1 {
		t.Fatalf("unknown options counted %d, want 1", s.Stats().UnknownOptions)
	}
}
