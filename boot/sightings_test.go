package boot

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/node"
)

func TestSightings_ExpireAndStayBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	s := NewSightings(10*time.Minute, 3, func() time.Time { return now })
	a, b := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.6")
	m1, m2, m3, m4 := mustMAC("52:54:00:00:30:01"), mustMAC("52:54:00:00:30:02"), mustMAC("52:54:00:00:30:03"), mustMAC("52:54:00:00:30:04")

	s.Saw(m1, a)
	s.Saw(m1, netip.Addr{})                           // nothing to record
	s.Saw(m1, netip.MustParseAddr("0.0.0.0"))         // nor the unspecified address
	s.Saw(m2, netip.MustParseAddr("::ffff:10.0.0.6")) // stored unmapped
	if !s.Seen(m1, a) || s.Seen(m1, b) || !s.Seen(m2, b) || s.Seen(m3, a) {
		t.Fatalf("seen: m1@a %v, m1@b %v, m2@b %v, m3@a %v; want true false true false", s.Seen(m1, a), s.Seen(m1, b), s.Seen(m2, b), s.Seen(m3, a))
	}
	now = now.Add(10 * time.Minute)
	if s.Seen(m1, a) {
		t.Error("a sighting older than the TTL still counts")
	}
	// A flood of new MACs: the record keeps at most 3, dropping expired ones first and
	// then the least recently seen.
	s.Saw(m3, a)
	s.Saw(m4, a)
	for i := range 1000 {
		s.Saw(node.MAC{0x02, 0, 0, 0, byte(i >> 8), byte(i)}, a)
	}
	if s.Len() > 3 {
		t.Errorf("%d MACs on record, want at most 3", s.Len())
	}
}

// TestSightings_FedByBothModes: full mode records the address it acknowledged, proxy
// mode the addresses the client shows using from the other server.
func TestSightings_FedByBothModes(t *testing.T) {
	t.Run("full", func(t *testing.T) {
		cfg := testConfig(ModeFull)
		cfg.Sightings = NewSightings(0, 0, nil)
		s := socketless(t, cfg, openTestStore(t, t.TempDir()))
		mac := mustMAC("52:54:00:00:31:01")
		ack := dora(t, s, mac)
		if got := addrOf(ack.YourIPAddr); !cfg.Sightings.Seen(mac, got) {
			t.Errorf("the acknowledged %s is not on record", got)
		}
		// A REQUEST claiming an address we never gave is not a sighting in full mode.
		claim := netip.MustParseAddr("10.77.0.250")
		m, err := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC("52:54:00:00:31:02").HardwareAddr()),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.IP(claim.AsSlice())))
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, s, m, 67)
		if cfg.Sightings.Seen(mustMAC("52:54:00:00:31:02"), claim) {
			t.Error("full mode recorded a client's own claim")
		}
	})
	t.Run("proxy", func(t *testing.T) {
		cfg := testConfig(ModeProxy)
		cfg.Sightings = NewSightings(0, 0, nil)
		s := socketless(t, cfg, openTestStore(t, t.TempDir()))
		mac := mustMAC("52:54:00:00:31:03")
		// The address server's REQUEST (port 67, not for us) and a renewal from ciaddr.
		asked := netip.MustParseAddr("10.77.0.140")
		m, err := dhcpv4.New(dhcpv4.WithHwAddr(mac.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(asked.AsSlice()))))
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, s, m, 67)
		if !cfg.Sightings.Seen(mac, asked) {
			t.Errorf("the requested %s is not on record", asked)
		}
		renewing := netip.MustParseAddr("10.77.0.141")
		m, err = dhcpv4.New(dhcpv4.WithHwAddr(mac.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithClientIP(net.IP(renewing.AsSlice())))
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, s, m, 67)
		if !cfg.Sightings.Seen(mac, renewing) {
			t.Errorf("the ciaddr %s is not on record", renewing)
		}
	})
}
