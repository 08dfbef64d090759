package boot

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// releaseFor is a RELEASE for ip from mac (RFC 2131: ciaddr is the lease).
func releaseFor(t testing.TB, mac node.MAC, ip netip.Addr) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(dhcpv4.WithHwAddr(mac.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(ip.AsSlice()), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// declineFor is a DECLINE of ip from mac (option 50; ciaddr set only when asked).
func declineFor(t testing.TB, mac node.MAC, ip netip.Addr, ciaddr netip.Addr) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1")))}
	if ciaddr.IsValid() {
		mods = append(mods, dhcpv4.WithClientIP(ciaddr.AsSlice()))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDHCP_ReleaseAndDeclineForAnotherClientsLeaseFreeNothing(t *testing.T) {
	ctx := context.Background()
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	victim, attacker := mustMAC("52:54:00:5e:00:01"), mustMAC("52:54:00:5e:00:02")
	victimIP := addrOf(dora(t, s, victim).YourIPAddr)
	attackerIP := addrOf(dora(t, s, attacker).YourIPAddr)
	from := func(ip netip.Addr) netip.AddrPort { return netip.AddrPortFrom(ip, 68) }
	unaddressed := netip.MustParseAddrPort("0.0.0.0:68")

	tests := []struct {
		name    string
		msg     *dhcpv4.DHCPv4
		peer    netip.AddrPort
		counter func(DHCPStats) uint64
	}{
		{"RELEASE of the victim's lease from the attacker's address", releaseFor(t, victim, victimIP), from(attackerIP), func(s DHCPStats) uint64 { return s.ReleaseSpoofed }},
		{"RELEASE of the victim's lease from no address", releaseFor(t, victim, victimIP), unaddressed, func(s DHCPStats) uint64 { return s.ReleaseSpoofed }},
		{"RELEASE of the victim's address with the attacker's MAC", releaseFor(t, attacker, victimIP), from(victimIP), func(s DHCPStats) uint64 { return s.ReleaseSpoofed }},
		{"DECLINE of the victim's address with the attacker's MAC", declineFor(t, attacker, victimIP, netip.Addr{}), unaddressed, func(s DHCPStats) uint64 { return s.DeclineSpoofed }},
		{"DECLINE of the victim's address from a configured host", declineFor(t, victim, victimIP, netip.Addr{}), from(attackerIP), func(s DHCPStats) uint64 { return s.DeclineSpoofed }},
		{"DECLINE with ciaddr set", declineFor(t, victim, victimIP, attackerIP), unaddressed, func(s DHCPStats) uint64 { return s.DeclineSpoofed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.counter(s.Stats())
			if reply, _ := exchangeFrom(t, s, tt.msg, 67, tt.peer); reply != nil {
				t.Fatalf("got a reply %s", reply.MessageType())
			}
			if got := tt.counter(s.Stats()); got != before+1 {
				t.Errorf("spoofed counter %d → %d, want one more", before, got)
			}
			if holder, ok := s.table.holder(victimIP, s.now()); !ok || holder != victim {
				t.Fatalf("victim's %s now held by %s (%v), want still %s", victimIP, holder, ok, victim)
			}
			if mac, err := inv.MACForIP(ctx, victimIP); err != nil || mac != victim {
				t.Fatalf("store: %s → %s, %v; want the victim's lease kept", victimIP, mac, err)
			}
		})
	}
	// The victim's own RELEASE, from its address, is honoured.
	exchangeFrom(t, s, releaseFor(t, victim, victimIP), 67, from(victimIP))
	if _, err := inv.MACForIP(ctx, victimIP); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("the victim's own RELEASE did not free %s: %v", victimIP, err)
	}
	// And a DECLINE from the client the address was offered to, from no address.
	offer, _ := exchange(t, s, discoverFrom(t, attacker), 67)
	offered := addrOf(offer.YourIPAddr)
	before := s.Stats().Declines
	exchange(t, s, declineFor(t, attacker, offered, netip.Addr{}), 67)
	if _, held := s.table.holder(offered, s.now()); s.Stats().Declines != before+1 || held {
		t.Fatalf("the offered client's DECLINE of %s was not honoured", offered)
	}
}

// TestDHCP_SpoofedReleaseOnTheWireIsIgnored sends real datagrams across the lab's veth:
// the attacker holds a lease of its own and sends a RELEASE for the victim's lease from
// its own address; the victim's RELEASE from its address is then honoured.
func TestDHCP_SpoofedReleaseOnTheWireIsIgnored(t *testing.T) {
	l := newLab(t)
	s, _ := l.start(labConfig(ModeFull))
	conn := l.clientConn()
	victim, attacker := mustMAC("52:54:00:5e:01:01"), mustMAC("52:54:00:5e:01:02")
	victimIP := labDORA(t, conn, victim)
	attackerIP := labDORA(t, conn, attacker)

	sendFrom := func(src netip.Addr, m *dhcpv4.DHCPv4) {
		t.Helper()
		l.cli.AddAddr("bcli", netip.PrefixFrom(src, 24))
		var c *net.UDPConn
		if err := l.cli.Do(func() error {
			var err error
			c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: src.AsSlice()})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteToUDP(m.ToBytes(), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67}); err != nil {
			t.Fatal(err)
		}
	}
	sendFrom(attackerIP, releaseFor(t, victim, victimIP))
	waitUntil(t, "the spoofed RELEASE is counted", func() bool { return s.Stats().ReleaseSpoofed == 1 })
	if holder, ok := s.table.holder(victimIP, s.now()); !ok || holder != victim {
		t.Fatalf("after a spoofed RELEASE %s is held by %s (%v), want the victim %s", victimIP, holder, ok, victim)
	}
	if mac, err := l.inv.MACForIP(context.Background(), victimIP); err != nil || mac != victim {
		t.Fatalf("store: %s → %s, %v; want the victim's lease", victimIP, mac, err)
	}

	sendFrom(victimIP, releaseFor(t, victim, victimIP))
	waitUntil(t, "the victim's own RELEASE frees its lease", func() bool {
		_, err := l.inv.MACForIP(context.Background(), victimIP)
		return errors.Is(err, node.ErrNotFound)
	})
	if st := s.Stats(); st.ReleaseSpoofed != 1 || st.Releases != 2 {
		t.Errorf("releases %d, spoofed %d; want 2 and 1", st.Releases, st.ReleaseSpoofed)
	}
}

// labDORA runs one DISCOVER/OFFER/REQUEST/ACK for mac over conn and returns the address.
func labDORA(t testing.TB, conn *net.UDPConn, mac node.MAC) netip.Addr {
	t.Helper()
	offer := labExchange(t, conn, discoverFrom(t, mac, dhcpv4.WithBroadcast(true)))
	if offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER: got %s", offer.MessageType())
	}
	ack := labExchange(t, conn, requestFor(t, offer, dhcpv4.WithBroadcast(true)))
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST: got %s", ack.MessageType())
	}
	return addrOf(ack.YourIPAddr)
}

// labExchange broadcasts m and returns the reply with its transaction ID.
func labExchange(t testing.TB, conn *net.UDPConn, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	if _, err := conn.WriteToUDP(m.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for the reply to %s: %v", m.MessageType(), err)
		}
		if r, err := dhcpv4.FromBytes(buf[:n]); err == nil && r.TransactionID == m.TransactionID && r.OpCode == dhcpv4.OpcodeBootReply {
			return r
		}
	}
}

func TestDHCP_APanickingHandlerCostsOnePacketNotTheServer(t *testing.T) {
	l := newLab(t)
	poison := mustMAC("52:54:00:de:ad:01")
	l.prepare = func(s *DHCPServer) {
		real := s.handlePacket
		s.handlePacket = func(ctx context.Context, b []byte, port int, peer netip.AddrPort) ([]byte, netip.AddrPort, bool) {
			if mac, ok := peekMAC(b); ok && mac == poison {
				panic("injected: a handler bug meets a hostile packet")
			}
			return real(ctx, b, port, peer)
		}
	}
	cfg := labConfig(ModeFull)
	cfg.Workers = 2 // more panics than workers: none of them may be lost for good
	s, _ := l.start(cfg)
	conn := l.clientConn()
	const poisoned = 6
	for range poisoned {
		if _, err := conn.WriteToUDP(discoverFrom(t, poison).ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "every poisoned packet's panic is recovered and counted", func() bool { return s.Stats().Panics == poisoned })
	if ip := labDORA(t, conn, mustMAC("52:54:00:de:ad:02")); !cfg.Range.Contains(ip) {
		t.Fatalf("after the panics a client got %s", ip)
	}
}

// panickyInventory panics when recording one MAC's boot.
type panickyInventory struct {
	*testInventory
	poison node.MAC
}

func (p panickyInventory) RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error {
	if mac == p.poison {
		panic("injected: inventory bug")
	}
	return p.testInventory.RecordBoot(ctx, mac, seen)
}

// panickyLeases panics on the first lease write it is asked for.
type panickyLeases struct {
	*testInventory
	armed atomic.Bool
}

func (p *panickyLeases) PutLeases(ctx context.Context, leases ...store.Lease) error {
	if p.armed.CompareAndSwap(true, false) {
		panic("injected: lease store bug")
	}
	return p.testInventory.PutLeases(ctx, leases...)
}

func TestDHCP_PanicsInTheRecorderAndTheCommitterAreRecovered(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	poison, good := mustMAC("52:54:00:de:ad:11"), mustMAC("52:54:00:de:ad:12")
	leases := &panickyLeases{testInventory: inv}
	s, err := newDHCP(testConfig(ModeFull), testLink, panickyInventory{testInventory: inv, poison: poison}, leases, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.commit.run(ctx)
	go s.recordBoots(ctx)
	defer func() { close(s.commit.requests); close(s.boots) }()
	pxe := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}

	// The recorder: the poisoned boot panics, the next client's boot is still recorded.
	exchange(t, s, discoverFrom(t, poison, pxe...), 67)
	exchange(t, s, discoverFrom(t, good, pxe...), 67)
	waitUntil(t, "the good client's boot is recorded after the poisoned one panicked", func() bool {
		for _, r := range inv.recorded() {
			if r.mac == good {
				return true
			}
		}
		return false
	})
	if got := s.Stats().Panics; got != 1 {
		t.Fatalf("panics = %d after the recorder's, want 1", got)
	}

	// The committer: the batch that panics gets no ACK (the client retransmits), the
	// committer lives on and the retransmission is ACKed.
	offer, _ := exchange(t, s, discoverFrom(t, good), 67)
	leases.armed.Store(true)
	if reply, _ := exchange(t, s, requestFor(t, offer), 67); reply != nil {
		t.Fatalf("a REQUEST whose lease write panicked got %s, want silence", reply.MessageType())
	}
	if got := s.Stats().Panics; got != 2 {
		t.Fatalf("panics = %d after the committer's, want 2", got)
	}
	if reply, _ := exchange(t, s, requestFor(t, offer), 67); reply == nil || reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("the retransmitted REQUEST got %v, want an ACK", reply)
	}
}

func TestDHCP_NonPrintableOptionTextIsReplacedAtTheEdge(t *testing.T) {
	ctx := context.Background()
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	mac := mustMAC("52:54:00:e5:c0:01")
	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000\x1b[2J\x1b]0;owned\x07")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("\x04iPXE\nforged=1")),
		dhcpv4.WithOption(dhcpv4.OptHostName("node\x1b[31m\u202e")),
	}
	ack := dora(t, s, mac, mods...)
	var seen node.BootInfo
	waitUntil(t, "the boot is recorded", func() bool {
		for _, r := range inv.recorded() {
			if r.mac == mac {
				seen = r.seen
				return true
			}
		}
		return false
	})
	if want := "PXEClient:Arch:00000?[2J?]0;owned?"; seen.VendorClass != want {
		t.Errorf("vendor class recorded as %q, want %q", seen.VendorClass, want)
	}
	if want := "iPXE?forged=1"; seen.UserClass != want {
		t.Errorf("user class recorded as %q, want %q", seen.UserClass, want)
	}
	lease, err := inv.LeaseForMAC(ctx, mac)
	if err != nil || lease.IP != addrOf(ack.YourIPAddr) {
		t.Fatalf("lease %+v, %v", lease, err)
	}
	if want := "node?[31m?"; lease.Hostname != want {
		t.Errorf("lease hostname stored as %q, want %q", lease.Hostname, want)
	}
}

func TestDHCP_GroupAndZeroMACsGetNothing(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	pxe := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}
	for _, mac := range []node.MAC{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}, {}} {
		before := s.Stats().Ignored
		if reply, _ := exchange(t, s, discoverFrom(t, mac, pxe...), 67); reply != nil {
			t.Errorf("DISCOVER from %s got %s", mac, reply.MessageType())
		}
		if got := s.Stats().Ignored; got != before+1 {
			t.Errorf("DISCOVER from %s: ignored %d → %d, want one more", mac, before, got)
		}
	}
	if st := s.Stats(); st.Offers != 0 || len(inv.recorded()) != 0 {
		t.Errorf("offers %d, boots recorded %d; want none", st.Offers, len(inv.recorded()))
	}
}

// TestDHCP_AFloodOfNewMACsKeepsTheLeaseTableWithinThePool checks the other map keyed by
// requester: offers and leases are indexed by address, one record per MAC, so however many
// MACs ask, the table never holds more records than the pool has addresses.
func TestDHCP_AFloodOfNewMACsKeepsTheLeaseTableWithinThePool(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	cfg := testConfig(ModeFull) // a 100-address range
	s := socketless(t, cfg, inv)
	for i := range 2000 {
		mac := node.MAC{0x02, 0xf1, 0, 0, byte(i >> 8), byte(i)}
		offer, _ := exchange(t, s, discoverFrom(t, mac), 67)
		if offer != nil && i%3 == 0 {
			exchange(t, s, requestFor(t, offer), 67) // some take their lease too
		}
	}
	s.table.mu.Lock()
	byIP, byMAC := len(s.table.byIP), len(s.table.byMAC)
	s.table.mu.Unlock()
	if size := cfg.Range.Size(); byIP > size || byMAC > size {
		t.Fatalf("after 2,000 MACs the table holds %d addresses and %d MACs, want at most the pool's %d", byIP, byMAC, size)
	}
	if st := s.Stats(); st.PoolExhausted == 0 {
		t.Fatalf("2,000 MACs on 100 addresses never exhausted the pool: %+v", st)
	}
}

// countingHandler counts log records whose message contains a substring.
type countingHandler struct {
	slog.Handler
	substr string
	n      *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.n.Add(1)
	}
	return nil
}

func TestDHCP_AFullPoolIsLoggedOncePerIntervalNotPerPacket(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	var lines atomic.Int64
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, substr: "pool exhausted", n: &lines})
	s, err := newDHCP(testConfig(ModeFull), testLink, inv, inv, log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	discover := func(i int) {
		exchange(t, s, discoverFrom(t, node.MAC{0x02, 0xf2, 0, 0, byte(i >> 8), byte(i)}), 67)
	}
	for i := range 300 { // 100 addresses: 200 DISCOVERs find the pool full
		discover(i)
	}
	if st := s.Stats(); st.PoolExhausted != 200 || lines.Load() != 1 {
		t.Fatalf("%d DISCOVERs on a full pool wrote %d log lines, want 200 counted and 1 line", st.PoolExhausted, lines.Load())
	}
	now = now.Add(exhaustedLogEvery)
	discover(1000)
	if lines.Load() != 2 {
		t.Fatalf("after the interval: %d lines, want a second one", lines.Load())
	}
}
