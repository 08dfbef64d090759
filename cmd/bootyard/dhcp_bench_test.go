package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
)

// BenchmarkServeDHCPDORA measures the product as deployed: `bootyard serve` in one
// namespace with DHCP on a veth, and the load generator in another process's namespace,
// 50 exchanges in flight, distinct MACs, 50,000 leases in five windows. The server is
// its own process, as Kea and dnsmasq were when they were measured.
func BenchmarkServeDHCPDORA(b *testing.B) {
	netns.Require(b)
	bin := buildBinary(b)
	for range b.N {
		srv, cli := netns.New(b, "dsrv"), netns.New(b, "dcli")
		netns.Link(b, srv, "bsrv", cli, "bcli")
		srv.AddAddr("bsrv", netip.MustParsePrefix("10.64.0.1/16"))
		data := b.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cmd := srv.Command(ctx, bin, "serve", "--data", data, "--listen", "127.0.0.1:8080",
			"--advertise-url", "http://10.64.0.1:8080", "--dhcp-interface", "bsrv",
			"--dhcp-range", "10.64.1.0-10.64.255.250", "--log-level", "warn")
		logf, _ := os.Create(filepath.Join(data, "serve.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait(); cancel() })
		var conn *net.UDPConn
		if err := cli.Do(func() error {
			var err error
			conn, err = server4.NewIPv4UDPConn("bcli", &net.UDPAddr{Port: 68})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		time.Sleep(500 * time.Millisecond) // serve binds its DHCP socket at start
		for w := range 5 {
			res, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn,
				Server: netip.MustParseAddrPort("255.255.255.255:67"), Clients: 50, Exchanges: 10_000,
				MACPrefix: [2]byte{0x02, 0xc0}, FirstMAC: uint32(w * 10_000)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Rate, fmt.Sprintf("exch/s@%dk", (w+1)*10))
			b.ReportMetric(float64(res.P99.Microseconds())/1000, fmt.Sprintf("p99-ms@%dk", (w+1)*10))
			b.Logf("leases %d→%d: %s", w*10_000, (w+1)*10_000, res)
		}
	}
}
