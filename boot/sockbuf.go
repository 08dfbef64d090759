package boot

import (
	"log/slog"
	"net"

	"golang.org/x/sys/unix"
)

// requestReadBuffer is the receive buffer of the request sockets (DHCP 67, TFTP 69). A
// rack powering on sends a thousand DISCOVERs within milliseconds, and the default
// 208 KiB holds a few hundred datagrams (each costs its kernel buffer, not its length):
// BenchmarkStorm with 1,000 machines at once lost 917 DISCOVERs on the default, each
// costing a machine its 2-second retry.
const requestReadBuffer = 4 << 20

// growReadBuffer raises conn's receive buffer to size: SO_RCVBUFFORCE where the process
// may (CAP_NET_ADMIN), else SO_RCVBUF, which the kernel caps at net.core.rmem_max. It
// logs what it got; a small buffer is not fatal, only slower under a storm.
func growReadBuffer(conn *net.UDPConn, size int, log *slog.Logger) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	// The kernel reports double what was granted (it counts its bookkeeping).
	if got/2 < size {
		log.Info("receive buffer smaller than wanted; raise net.core.rmem_max for boot storms",
			slog.String("addr", conn.LocalAddr().String()), slog.Int("bytes", got/2), slog.Int("wanted", size))
		return
	}
	log.Debug("receive buffer", slog.String("addr", conn.LocalAddr().String()), slog.Int("bytes", got/2))
}
