package boot

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
)

// A panic in the handling of one packet, one boot record or one transfer must cost that
// packet, not the server: the DHCP and TFTP goroutines each recover, log the panic with
// its stack and count it (bootyard_dhcp_packets_total{result="panic"},
// bootyard_tftp_transfers_total{result="panic"}). The deferred calls take only values
// already at hand, so the packet path pays for a defer and nothing else.

// recoverPacket ends a packet handler that panicked.
func (s *DHCPServer) recoverPacket(peer netip.AddrPort, port int) {
	if v := recover(); v != nil {
		s.stats.panics.Add(1)
		s.log.Error("dhcp: handling a packet panicked; the packet is dropped", slog.String("from", peer.String()),
			slog.Int("port", port), slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
	}
}

// recoverTask ends one unit of background work (reading a datagram, a boot record, a
// reservations refresh) that panicked; the loop that called it goes on.
func (s *DHCPServer) recoverTask(what string) {
	if v := recover(); v != nil {
		s.stats.panics.Add(1)
		s.log.Error("dhcp: "+what+" panicked; skipped", slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
	}
}

// recoverRequest ends the handling of one TFTP request that panicked: the client is
// told, and the request loop goes on.
func (s *TFTPServer) recoverRequest(conn *net.UDPConn, peer *net.UDPAddr) {
	if v := recover(); v != nil {
		s.stats.panics.Add(1)
		s.log.Error("tftp: handling a request panicked; the transfer is refused", slog.String("client", peer.String()),
			slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		_, _ = conn.WriteToUDP(errorPacket(errCodeNotFound, errNotFound.Error()), peer)
	}
}

// recoverTransfer ends a TFTP transfer whose goroutine panicked; the client times out.
func (s *TFTPServer) recoverTransfer(filename string) {
	if v := recover(); v != nil {
		s.stats.panics.Add(1)
		s.log.Error("tftp: a transfer panicked; it is abandoned", slog.String("file", quoteShort(filename)),
			slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
	}
}
