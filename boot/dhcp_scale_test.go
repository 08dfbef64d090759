package boot

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/scaletest"
)

// reservedMAC is the MAC of reserved node i: the load generator's MACs with prefix
// 02:c1 and counter i, so a run can play the reserved machines themselves.
func reservedMAC(i int) node.MAC {
	return node.MAC{0x02, 0xc1, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// TestScale_DHCPDORAWithReservations reports issue 13's DHCP figure: the DORA rate of new
// machines on a server with no reservations, and on one whose store holds
// BOOTYARD_SCALE_NODES nodes with static addresses (100,000 for the README's figure),
// plus the rate of the reserved machines themselves. Reservations are a map lookup on
// the packet path, so the rates should match; the test checks the answers (every
// exchange completes, reserved machines get their own address), not the rates.
func TestScale_DHCPDORAWithReservations(t *testing.T) {
	n := scaletest.Nodes(t, 2000)
	exchanges := 2000
	run := func(t *testing.T, reservations int, prefix [2]byte) loadgen.Result {
		l := newLabOn(t, netip.MustParsePrefix("10.0.0.1/8"))
		if reservations > 0 {
			rows := make([]store.ImportRow, reservations)
			for i := range rows {
				ip := netip.AddrFrom4([4]byte{10, byte(128 + i>>16), byte(i >> 8), byte(i)})
				rows[i] = store.ImportRow{Line: i + 1, Node: node.Node{Name: fmt.Sprintf("r-%06d", i), MACs: []node.MAC{reservedMAC(i)},
					Role: node.RoleWorker, IP: netip.PrefixFrom(ip, 8)}}
			}
			if _, err := l.inv.ImportNodes(context.Background(), rows, store.ImportOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		cfg := labConfig(ModeFull)
		cfg.Range = Range{Start: netip.MustParseAddr("10.64.1.0"), End: netip.MustParseAddr("10.64.255.250")}
		cfg.Router = netip.MustParseAddr("10.0.0.1")
		cfg.DNS = nil
		l.start(cfg)
		conn := l.clientConn()
		// A warm-up with other MACs: the server loads its reservations when it starts, and
		// the figure is the rate once it serves, not its start-up.
		if _, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
			Clients: 10, Exchanges: 100, MACPrefix: [2]byte{0x02, 0xef}}); err != nil {
			t.Fatal(err)
		}
		res, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
			Clients: 50, Exchanges: exchanges, MACPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failures > 0 || res.Exchanges != exchanges {
			t.Fatalf("%d of %d exchanges completed, %d failed", res.Exchanges, exchanges, res.Failures)
		}
		return res
	}
	none := run(t, 0, [2]byte{0x02, 0xd0})
	t.Logf("new machines, no reservations: %s", none)
	with := run(t, n, [2]byte{0x02, 0xd1})
	t.Logf("new machines, %d reservations: %s (%.0f%% of the rate with none)", n, with, 100*with.Rate/none.Rate)
	reserved := run(t, n, [2]byte{0x02, 0xc1})
	for _, a := range reserved.Addresses {
		if a.As4()[1] < 128 {
			t.Fatalf("a reserved machine got pool address %s", a)
		}
	}
	t.Logf("the reserved machines themselves, %d reservations: %s (%.0f%% of the rate with none)", n, reserved, 100*reserved.Rate/none.Rate)
}
