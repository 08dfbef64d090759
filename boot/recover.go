package boot

import (
	"fmt"
	"log/slog"
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

// recoverTransfer ends a TFTP request handler that panicked; *err is what pin/tftp
// sends the client.
func (s *TFTPServer) recoverTransfer(filename string, err *error) {
	if v := recover(); v != nil {
		s.stats.panics.Add(1)
		s.log.Error("tftp: handling a request panicked; the transfer is refused", slog.String("file", quoteShort(filename)),
			slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		*err = errNotFound
	}
}
