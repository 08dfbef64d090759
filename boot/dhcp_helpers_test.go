package boot

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// testInventory is the real store plus a RecordBoot that remembers its calls, so tests
// can check who was recorded (the store's own RecordBoot is another package's concern).
type testInventory struct {
	*store.Store
	mu    sync.Mutex
	boots []bootRecord
}

func (i *testInventory) RecordBoot(_ context.Context, mac node.MAC, seen node.BootInfo) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.boots = append(i.boots, bootRecord{mac: mac, seen: seen})
	return nil
}

func (i *testInventory) recorded() []bootRecord {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]bootRecord(nil), i.boots...)
}

func openTestStore(t testing.TB, dir string) *testInventory {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "bootyard.db"), store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &testInventory{Store: s}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

var testLink = link{name: "test0", addr: netip.MustParseAddr("10.77.0.1"), subnet: netip.MustParsePrefix("10.77.0.0/24")}

func testConfig(mode DHCPMode) DHCPConfig {
	return DHCPConfig{
		Interface:    "test0",
		Mode:         mode,
		Range:        Range{Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.199")},
		Router:       netip.MustParseAddr("10.77.0.1"),
		DNS:          []netip.Addr{netip.MustParseAddr("10.77.0.53")},
		LeaseTime:    time.Hour,
		AdvertiseURL: "http://10.77.0.1:8080",
	}
}

// socketless is a server with no sockets whose committer runs, for driving handle.
func socketless(t testing.TB, cfg DHCPConfig, inv *testInventory) *DHCPServer {
	t.Helper()
	return socketlessOn(t, cfg, testLink, inv, inv)
}

// socketlessOn is socketless on link l with leases kept in leases.
func socketlessOn(t testing.TB, cfg DHCPConfig, l link, inv *testInventory, leases LeaseStore) *DHCPServer {
	t.Helper()
	s, err := newDHCP(cfg, l, inv, leases, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.commit.run(ctx); close(done) }()
	go s.recordBoots(ctx)
	t.Cleanup(func() {
		close(s.commit.requests)
		<-done
		close(s.boots)
		cancel()
	})
	return s
}

func mustMAC(s string) node.MAC {
	m, err := node.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func discoverFrom(t testing.TB, mac node.MAC, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac.HardwareAddr(), mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func requestFor(t testing.TB, offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exchange sends m through the handler and parses the reply (nil when silent).
func exchange(t testing.TB, s *DHCPServer, m *dhcpv4.DHCPv4, port int) (*dhcpv4.DHCPv4, netip.AddrPort) {
	t.Helper()
	return exchangeFrom(t, s, m, port, netip.MustParseAddrPort("0.0.0.0:68"))
}

// exchangeFrom is exchange with the datagram's source address chosen.
func exchangeFrom(t testing.TB, s *DHCPServer, m *dhcpv4.DHCPv4, port int, peer netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
	t.Helper()
	b, dst, ok := s.handle(context.Background(), m.ToBytes(), port, peer)
	if !ok {
		return nil, dst
	}
	reply, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatalf("server sent an unparseable reply: %v", err)
	}
	return reply, dst
}

// dora runs DISCOVER/OFFER/REQUEST/ACK for mac and returns the ACK.
func dora(t testing.TB, s *DHCPServer, mac node.MAC, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, _ := exchange(t, s, discoverFrom(t, mac, mods...), 67)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER from %s: no offer (stats %+v)", mac, s.Stats())
	}
	ack, _ := exchange(t, s, requestFor(t, offer, mods...), 67)
	if ack == nil {
		t.Fatalf("REQUEST from %s for %s: no reply", mac, offer.YourIPAddr)
	}
	return ack
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
