package boot

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestParseSubnets(t *testing.T) {
	tests := []struct {
		in      []string
		want    []netip.Prefix
		wantErr bool
	}{
		{nil, nil, false},
		{[]string{"10.1.7.0/24,10.1.8.9/24"}, []netip.Prefix{netip.MustParsePrefix("10.1.7.0/24"), netip.MustParsePrefix("10.1.8.0/24")}, false},
		{[]string{"10.1.7.0/24", " 10.2.0.0/16 "}, []netip.Prefix{netip.MustParsePrefix("10.1.7.0/24"), netip.MustParsePrefix("10.2.0.0/16")}, false},
		{[]string{"10.1.7.0"}, nil, true},
		{[]string{"fd00::/64"}, nil, true},
		{[]string{"rack7"}, nil, true},
	}
	for _, tt := range tests {
		got, err := ParseSubnets(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseSubnets(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// A per-rack replica answers its own rack's relay and drops, and counts, the requests of
// every other rack and of its interface's own subnet when that is not in its list.
func TestDHCP_SubnetsListedAreServedAndOthersDroppedAndCounted(t *testing.T) {
	l := newLab(t)
	// The client namespace plays two racks' relays: 10.77.0.2 on the shared link and
	// 10.88.0.1 (rack A, served) and 10.89.0.1 (rack B, another replica's) on lo.
	l.cli.AddAddr("bcli", netip.MustParsePrefix("10.77.0.2/24"))
	for _, giaddr := range []string{"10.88.0.1/32", "10.89.0.1/32"} {
		l.cli.IP("addr", "add", giaddr, "dev", "lo")
	}
	for _, subnet := range []string{"10.88.0.0/24", "10.89.0.0/24"} {
		l.srv.IP("route", "add", subnet, "via", "10.77.0.2", "dev", "bsrv")
	}
	cfg := labConfig(ModeFull)
	for _, rack := range []string{"10.88.0", "10.89.0"} {
		cfg.Relayed = append(cfg.Relayed, RelayedSubnet{Subnet: netip.MustParsePrefix(rack + ".0/24"),
			Range: Range{Start: netip.MustParseAddr(rack + ".10"), End: netip.MustParseAddr(rack + ".20")}, Router: netip.MustParseAddr(rack + ".1")})
	}
	cfg.Subnets = []netip.Prefix{netip.MustParsePrefix("10.88.0.0/24")}
	s, _ := l.start(cfg)

	relay := func(addr string) *net.UDPConn {
		var c *net.UDPConn
		if err := l.cli.Do(func() error {
			var err error
			c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr), Port: 67})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rackA, rackB := relay("10.88.0.1"), relay("10.89.0.1")
	server := &net.UDPAddr{IP: net.ParseIP("10.77.0.1"), Port: 67}
	// nothingFor checks that a socket holds no reply; called once the server has
	// counted its drop, which happens before any reply would be sent.
	nothingFor := func(c *net.UDPConn, who string) {
		t.Helper()
		c.SetReadDeadline(time.Now())
		if n, _, err := c.ReadFromUDP(make([]byte, 1500)); err == nil {
			t.Fatalf("%s got a %d-byte reply from a replica that does not serve it", who, n)
		}
	}

	// Rack A's relay: served.
	discover := discoverFrom(t, mustMAC("52:54:00:88:00:01"), dhcpv4.WithRelay(net.ParseIP("10.88.0.1")))
	if _, err := rackA.WriteToUDP(discover.ToBytes(), server); err != nil {
		t.Fatal(err)
	}
	rackA.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := rackA.Read(buf)
	if err != nil {
		t.Fatalf("rack A's relay got no reply: %v (stats %+v)", err, s.Stats())
	}
	if offer, err := dhcpv4.FromBytes(buf[:n]); err != nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("rack A's relay got %v, %v; want an OFFER", offer, err)
	}

	tests := []struct {
		name string
		send func() error
		conn *net.UDPConn
	}{
		{"rack B's relay", func() error {
			m := discoverFrom(t, mustMAC("52:54:00:89:00:01"), dhcpv4.WithRelay(net.ParseIP("10.89.0.1")))
			_, err := rackB.WriteToUDP(m.ToBytes(), server)
			return err
		}, rackB},
		{"rack B's client renewing by unicast (ciaddr, no giaddr)", func() error {
			m := discoverFrom(t, mustMAC("52:54:00:89:00:02"), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithClientIP(net.ParseIP("10.89.0.12")))
			_, err := rackB.WriteToUDP(m.ToBytes(), server)
			return err
		}, rackB},
		{"a client on the interface's own subnet, not listed", func() error {
			c := l.clientConn()
			m := discoverFrom(t, mustMAC("52:54:00:77:00:01"), dhcpv4.WithBroadcast(true))
			_, err := c.WriteToUDP(m.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67})
			return err
		}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the drop is counted", func() bool { return s.Stats().OutsideSubnets == uint64(i+1) })
			if tt.conn != nil {
				nothingFor(tt.conn, tt.name)
			}
		})
	}
	if st := s.Stats(); st.Offers != 1 || st.Discovers != 1 {
		t.Fatalf("stats %+v: want the one served DISCOVER and its OFFER only", st)
	}
}
