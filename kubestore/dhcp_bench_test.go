package kubestore_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/store"
)

// BenchmarkDHCPDORAKubernetes is the DHCP server's DISCOVER/OFFER/REQUEST/ACK with every
// lease in a BootyardLeaseBlock on a real kube-apiserver + etcd before its ACK, as
// boot.BenchmarkDHCPDORA measures it on bbolt: client and server in two namespaces
// joined by a veth (the DHCP sockets are opened inside the server's namespace; the API
// client stays on this process's loopback), 50 exchanges in flight, distinct MACs, in
// windows of 1,000. The API server and etcd share the machine's cores with the test.
func BenchmarkDHCPDORAKubernetes(b *testing.B) {
	netns.Require(b)
	api := startAPI(b)
	for i := range b.N {
		st := openIn(b, api, fmt.Sprintf("dhcp-bench-%d", i), store.Limits{})
		srvNS, cliNS := netns.New(b, "ksrv"), netns.New(b, "kcli")
		netns.Link(b, srvNS, "bsrv", cliNS, "bcli")
		srvNS.AddAddr("bsrv", netip.MustParsePrefix("10.64.0.1/16"))
		cfg := boot.DHCPConfig{Interface: "bsrv", Mode: boot.ModeFull, LeaseTime: time.Hour, AdvertiseURL: "http://10.64.0.1:8080",
			Range:  boot.Range{Start: netip.MustParseAddr("10.64.1.0"), End: netip.MustParseAddr("10.64.255.250")},
			Router: netip.MustParseAddr("10.64.0.1")}
		var srv *boot.DHCPServer
		if err := srvNS.Do(func() error {
			var err error
			srv, err = boot.NewDHCP(cfg, st, st, slog.New(slog.DiscardHandler))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		var conn *net.UDPConn
		if err := cliNS.Do(func() error {
			var err error
			conn, err = server4.NewIPv4UDPConn("bcli", &net.UDPAddr{Port: 68})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		for w := range 3 {
			res, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
				Clients: 50, Exchanges: 1000, MACPrefix: [2]byte{0x02, 0xce}, FirstMAC: uint32(w * 1000)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Rate, fmt.Sprintf("exch/s@%dk", w+1))
			b.ReportMetric(float64(res.P99.Microseconds())/1000, fmt.Sprintf("p99-ms@%dk", w+1))
			b.Logf("leases %d→%d: %s", w*1000, (w+1)*1000, res)
		}
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
		leases, err := st.Leases(context.Background())
		if err != nil || len(leases) != 3000 {
			b.Errorf("%d leases stored, %v; want 3000", len(leases), err)
		}
		stats := srv.Stats()
		b.Logf("%d ACKs in %d commits (%.1f leases per commit, %.2f ms per commit)", stats.Acks, stats.CommitBatches,
			float64(stats.LeasesCommited)/float64(max(1, stats.CommitBatches)), float64(stats.CommitNanos)/float64(max(1, stats.CommitBatches))/1e6)
	}
}
