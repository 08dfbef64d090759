package boot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/boot/loadgen"
)

// benchLab is a lab on a /16, big enough for 50,000 leases, with a fresh bbolt file.
func benchLab(b *testing.B) (*lab, *DHCPServer, *net.UDPConn) {
	b.Helper()
	l := newLabOn(b, netip.MustParsePrefix("10.64.0.1/16"))
	cfg := labConfig(ModeFull)
	cfg.Range = Range{Start: netip.MustParseAddr("10.64.1.0"), End: netip.MustParseAddr("10.64.255.250")}
	cfg.Router = netip.MustParseAddr("10.64.0.1")
	cfg.DNS = nil
	s, _ := l.start(cfg)
	return l, s, l.clientConn()
}

// BenchmarkDHCPDORA measures full DISCOVER/OFFER/REQUEST/ACK exchanges with distinct
// MACs, 50 in flight, client and server in two namespaces joined by a veth, every lease
// durable in bbolt before its ACK. It reports exchanges/s and the p50/p99 latency.
func BenchmarkDHCPDORA(b *testing.B) {
	_, s, conn := benchLab(b)
	b.ResetTimer()
	res, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
		Clients: 50, Exchanges: b.N, MACPrefix: [2]byte{0x02, 0xbe}})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Failures > 0 {
		b.Logf("%d exchanges failed", res.Failures)
	}
	reportLoad(b, res, s)
}

// BenchmarkDHCPDORAFlat hands out 50,000 leases in five windows of 10,000 and reports
// each window's rate and p99, to show whether the cost grows with the lease count.
func BenchmarkDHCPDORAFlat(b *testing.B) {
	for range b.N {
		_, s, conn := benchLab(b)
		prev := s.Stats()
		for w := range 5 {
			res, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
				Clients: 50, Exchanges: 10_000, MACPrefix: [2]byte{0x02, 0xbf}, FirstMAC: uint32(w * 10_000)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Rate, fmt.Sprintf("exch/s@%dk", (w+1)*10))
			b.ReportMetric(float64(res.P99.Microseconds())/1000, fmt.Sprintf("p99-ms@%dk", (w+1)*10))
			st := s.Stats()
			commits := max(1, st.CommitBatches-prev.CommitBatches)
			b.Logf("leases %d→%d: %s; %.1f leases and %.2f ms per commit", w*10_000, (w+1)*10_000, res,
				float64(st.LeasesCommited-prev.LeasesCommited)/float64(commits), float64(st.CommitNanos-prev.CommitNanos)/float64(commits)/1e6)
			prev = st
		}
		st := s.Stats()
		b.Logf("stats: %d ACKs in %d commits (%.1f leases per commit, %.2f ms per commit), %d active leases, rate-limited %d, queue-full %d",
			st.Acks, st.CommitBatches, float64(st.LeasesCommited)/float64(max(1, st.CommitBatches)),
			float64(st.CommitNanos)/float64(max(1, st.CommitBatches))/1e6, st.ActiveLeases, st.RateLimited, st.QueueFull)
	}
}

func reportLoad(b *testing.B, res loadgen.Result, s *DHCPServer) {
	b.ReportMetric(res.Rate, "exch/s")
	b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
	st := s.Stats()
	b.ReportMetric(float64(st.LeasesCommited)/float64(max(1, st.CommitBatches)), "leases/fsync")
	b.Logf("%s", res)
}

// BenchmarkDHCPHandleDiscover is the CPU cost of one PXE DISCOVER through the handler
// alone (parse, classify, offer, reply), without sockets or fsyncs: steadier than the
// DORA figures on a busy machine, and its allocs/op show what the packet path allocates.
func BenchmarkDHCPHandleDiscover(b *testing.B) {
	inv := openTestStore(b, b.TempDir())
	s := socketless(b, testConfig(ModeFull), inv)
	pkt := discoverFrom(b, mustMAC("52:54:00:be:00:01"),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))).ToBytes()
	peer := netip.MustParseAddrPort("0.0.0.0:68")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := s.handle(ctx, pkt, 67, peer); !ok {
			b.Fatal("no offer")
		}
	}
}
