package loadgen

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestRunOpen_RefusesARunItCannotMeasure(t *testing.T) {
	// A socket on loopback that nothing is ever sent from: every case is refused first.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := netip.MustParseAddrPort("127.0.0.1:9")
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no socket", Config{Server: server, Rate: 100, Clients: 10, Exchanges: 10}, "needs a socket"},
		{"no rate", Config{Conn: conn, Server: server, Clients: 10, Exchanges: 10}, "rate > 0"},
		{"no bound in flight", Config{Conn: conn, Server: server, Rate: 100, Exchanges: 10}, "clients in flight > 0"},
		{"no exchanges", Config{Conn: conn, Server: server, Rate: 100, Clients: 10}, "exchanges > 0"},
		{"more in flight than transaction IDs keep apart", Config{Conn: conn, Server: server, Rate: 100, Clients: 1<<12 + 1, Exchanges: 10}, "at most 4096"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RunOpen(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("RunOpen(%s) = %v, want an error saying %q", tt.name, err, tt.want)
			}
		})
	}
}
