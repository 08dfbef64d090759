package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TFTPClients are the simulated machines of a TFTPLoad run. Each machine reads from its
// own IPv4 address, as the machines of a rack do, and they share a few UDP sockets, one
// per loop: a loop is one goroutine that takes the blocks of all its machines with one
// recvmmsg and sends their ACKs with one sendmmsg (tftp_loop.go). A socket and a parked
// goroutine per machine cost the load generator more CPU per block than the servers it
// measures spent, on the same cores: the ratio between two servers then measured the
// client. The machines' addresses are first, first+1, ...: a loop's socket is bound to
// the wildcard address, learns which machine a datagram is for from its destination
// (IP_PKTINFO) and sends each machine's packets from its own address the same way.
type TFTPClients struct {
	first netip.Addr
	n     int
	socks []*os.File // non-blocking: a loop that finds nothing waits in the runtime's poller
}

// OpenTFTPClients opens loops sockets for n machines at first, first+1, .... Call it in
// the machines' network namespace (netns.NS.Do): the sockets stay in the namespace they
// were opened in, whichever thread uses them later. Every address must be local there;
// any of 127/8 is on a namespace's loopback.
func OpenTFTPClients(first netip.Addr, n, loops int) (*TFTPClients, error) {
	if !first.Is4() || n <= 0 || loops <= 0 {
		return nil, fmt.Errorf("loadgen: tftp clients need an IPv4 address, machines and loops > 0 (got %s, %d, %d)", first, n, loops)
	}
	if last := addrAdd(first, uint32(n-1)); !last.IsValid() || last.Less(first) {
		return nil, fmt.Errorf("loadgen: %d machines from %s run past the end of IPv4", n, first)
	}
	c := &TFTPClients{first: first, n: n}
	for range min(loops, n) {
		fd, err := openClientSocket()
		if err != nil {
			c.Close()
			return nil, err
		}
		c.socks = append(c.socks, os.NewFile(uintptr(fd), "tftp-clients"))
	}
	return c, nil
}

// Machines is how many machines there are.
func (c *TFTPClients) Machines() int { return c.n }

// Close closes the sockets.
func (c *TFTPClients) Close() error {
	var errs []error
	for _, f := range c.socks {
		errs = append(errs, f.Close())
	}
	c.socks = nil
	return errors.Join(errs...)
}

// clientRcvBuf is each loop socket's receive buffer: a window of every machine's blocks
// may arrive before the loop reads (1,000 machines × 4 blocks of 1,468 bytes is about 10
// MB of kernel memory per socket, counted at 2 KiB and more a datagram). A burst must not
// be lost in the client's own buffer: the server is measured, not it.
const clientRcvBuf = 32 << 20

func openClientSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("loadgen: tftp client socket: %w", err)
	}
	setup := func() error {
		// SO_RCVBUFFORCE passes net.core.rmem_max for a privileged process (the tests run
		// as root, to make namespaces); otherwise the capped SO_RCVBUF is what we get.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, clientRcvBuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, clientRcvBuf); err != nil {
				return err
			}
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
			return err
		}
		// Don't fragment, as a PXE ROM's TFTP sends: the kernel then skips choosing an IP
		// ID for each ACK, which on an unconnected socket is a shared hash table's atomic.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{})
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("loadgen: tftp client socket: %w", err)
	}
	return fd, nil
}

// addrAdd is a+k, or the zero Addr past the end of IPv4.
func addrAdd(a netip.Addr, k uint32) netip.Addr {
	b := a.As4()
	v := uint64(binary.BigEndian.Uint32(b[:])) + uint64(k)
	if v > 0xffffffff {
		return netip.Addr{}
	}
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b)
}

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel fills in.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// pktinfoSpace is the room one IP_PKTINFO control message takes.
var pktinfoSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// putPktinfo writes an IP_PKTINFO control message into oob saying to send from src.
func putPktinfo(oob []byte, src [4]byte) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
	*pi = unix.Inet4Pktinfo{Spec_dst: src}
}

// pktinfoDst finds the destination address in a received datagram's control messages.
func pktinfoDst(oob []byte) ([4]byte, bool) {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			break
		}
		if h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && l >= unix.CmsgLen(unix.SizeofInet4Pktinfo) {
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return pi.Addr, true
		}
		oob = oob[min(len(oob), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return [4]byte{}, false
}

// sockaddr4 is ap in the kernel's form.
func sockaddr4(ap netip.AddrPort) unix.RawSockaddrInet4 {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	return sa
}

// addrPort4 decodes a sender address the kernel filled in.
func addrPort4(sa *unix.RawSockaddrInet4) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
}
