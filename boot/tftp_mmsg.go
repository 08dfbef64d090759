package boot

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw recvmmsg and sendmmsg on a transfer socket. golang.org/x/net/ipv4's batch calls do
// the same but allocate a net.UDPAddr for every datagram read and marshal a sockaddr for
// every one written; at one ACK and one DATA block per round trip of each machine, that
// is the hot path, so the headers, addresses and iovecs here are the socket's own arrays,
// filled in place and reused for every batch.

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel fills in. Go pads
// it to the same size as C does (64 bytes on 64-bit Linux, 32 on 32-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// sockaddr is a peer address in the kernel's form, large enough for IPv6.
type sockaddr struct {
	raw unix.RawSockaddrInet6
	len uint32
}

// sockaddrOf puts ap into the kernel's form for a socket of the given family.
func sockaddrOf(ap netip.AddrPort, v6 bool) sockaddr {
	var sa sockaddr
	if !v6 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		sa4.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
		sa4.Addr = ap.Addr().Unmap().As4()
		sa.len = unix.SizeofSockaddrInet4
		return sa
	}
	sa.raw.Family = unix.AF_INET6
	p := (*[2]byte)(unsafe.Pointer(&sa.raw.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	sa.raw.Addr = ap.Addr().As16()
	sa.len = unix.SizeofSockaddrInet6
	return sa
}

// addrPort decodes a peer address the kernel filled in; false for a family we do not serve.
func (sa *sockaddr) addrPort() (netip.AddrPort, bool) {
	p := (*[2]byte)(unsafe.Pointer(&sa.raw.Port))
	port := uint16(p[0])<<8 | uint16(p[1])
	switch sa.raw.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.raw.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// batchConn reads and writes batches of datagrams on one unconnected UDP socket through
// the runtime's poller: a call that would block parks the goroutine, not a thread.
type batchConn struct {
	conn *net.UDPConn
	raw  syscall.RawConn
	v6   bool
	gso  atomic.Bool // windows go out as UDP GSO datagrams (tftp_gso.go)
}

func newBatchConn(conn *net.UDPConn) (*batchConn, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	la, _ := conn.LocalAddr().(*net.UDPAddr)
	c := &batchConn{conn: conn, raw: raw, v6: la != nil && la.IP.To4() == nil}
	c.gso.Store(gsoSupported(raw))
	return c, nil
}

// recvBatch is the receive side's arrays: up to len(msgs) datagrams per call.
type recvBatch struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	addrs []sockaddr
	bufs  [][]byte
}

func newRecvBatch(n, size int) *recvBatch {
	b := &recvBatch{msgs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), addrs: make([]sockaddr, n), bufs: make([][]byte, n)}
	mem := make([]byte, n*size)
	for i := range n {
		b.bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i].raw))
	}
	return b
}

// read fills b with the datagrams waiting (at least one: it parks until one comes or the
// read deadline passes) and returns how many.
func (c *batchConn) read(b *recvBatch) (int, error) {
	for i := range b.msgs {
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.msgs[i].hdr.Flags = 0
	}
	var n int
	var serr error
	err := c.raw.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)),
			unix.MSG_DONTWAIT, 0, 0)
		for e == unix.EINTR {
			r, _, e = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)),
				unix.MSG_DONTWAIT, 0, 0)
		}
		if e == unix.EAGAIN {
			return false // nothing waiting: park until the poller says readable
		}
		n = int(r)
		if e != 0 {
			n, serr = 0, e
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return n, serr
}

// sendBatch is the send side's arrays, rebuilt for each batch from the packets queued.
// A message is one datagram, or a run of a window's blocks sent as one UDP GSO datagram
// (tftp_gso.go); segs says how many packets each message carries.
type sendBatch struct {
	msgs []mmsghdr
	iovs []unix.Iovec
	oobs [][gsoCmsgSpace]byte
	segs []int
}

// maxSendBatch is how many messages one sendmmsg carries: the kernel's UIO_MAXIOV cap.
const maxSendBatch = 1024

// write sends every packet in pkts, in order, sendmmsg by sendmmsg. A datagram the kernel
// refuses (a peer whose route vanished, say) is skipped and counted in the result, so one
// bad destination never holds up the others; their transfers' timers resend. A GSO
// message the kernel refuses is sent again as single datagrams.
func (c *batchConn) write(b *sendBatch, pkts []outPacket) (failed int, err error) {
	return c.send(b, pkts, c.gso.Load())
}

// send is write with windows as GSO datagrams or not.
func (c *batchConn) send(b *sendBatch, pkts []outPacket, gso bool) (failed int, err error) {
	for len(pkts) > 0 {
		used := b.build(pkts, gso)
		msgs := b.msgs
		for sent := 0; sent < len(msgs); {
			var k int
			var serr error
			werr := c.raw.Write(func(fd uintptr) bool {
				r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent),
					unix.MSG_DONTWAIT, 0, 0)
				for e == unix.EINTR {
					r, _, e = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent),
						unix.MSG_DONTWAIT, 0, 0)
				}
				if e == unix.EAGAIN {
					return false // the send buffer is full: park until it drains
				}
				k = int(r)
				if e != 0 {
					k, serr = 0, e
				}
				return true
			})
			if werr != nil {
				return failed, werr
			}
			if serr != nil {
				if errors.Is(serr, unix.EBADF) {
					return failed, serr
				}
				// The first message left was refused: skip it, send the rest.
				if n := b.segs[sent]; n > 1 {
					// A GSO message: its blocks go again one by one.
					if gsoUnsupported(serr) {
						c.gso.Store(false)
					}
					first := 0
					for _, s := range b.segs[:sent] {
						first += s
					}
					var single sendBatch
					f, err := c.send(&single, pkts[first:first+n], false)
					failed += f
					if err != nil {
						return failed, err
					}
				} else {
					failed++
				}
				k = 1
			}
			sent += k
		}
		pkts = pkts[used:]
	}
	return failed, nil
}

// build fills b with the messages for the first packets of pkts, up to maxSendBatch
// messages, and returns how many packets they carry. With gso, each run of a window's
// blocks becomes one message.
func (b *sendBatch) build(pkts []outPacket, gso bool) int {
	b.segs = b.segs[:0]
	used, iovs := 0, 0
	for used < len(pkts) && len(b.segs) < maxSendBatch {
		n := 1
		if gso {
			n = gsoRun(pkts[used:])
		}
		b.segs = append(b.segs, n)
		for _, p := range pkts[used : used+n] {
			iovs += min(p.hdrLen, 1) + min(len(p.payload), 1)
		}
		used += n
	}
	m := len(b.segs)
	if cap(b.msgs) < m {
		b.msgs = make([]mmsghdr, m)
		b.oobs = make([][gsoCmsgSpace]byte, m)
	}
	if cap(b.iovs) < iovs {
		b.iovs = make([]unix.Iovec, iovs)
	}
	b.msgs, b.oobs, b.iovs = b.msgs[:m], b.oobs[:m], b.iovs[:iovs]
	next, iv := 0, 0
	for i, n := range b.segs {
		first := iv
		for j := range n {
			p := &pkts[next+j]
			if p.hdrLen > 0 {
				b.iovs[iv].Base = &p.hdr[0]
				b.iovs[iv].SetLen(p.hdrLen)
				iv++
			}
			if len(p.payload) > 0 {
				b.iovs[iv].Base = &p.payload[0]
				b.iovs[iv].SetLen(len(p.payload))
				iv++
			}
		}
		p := &pkts[next]
		m := &b.msgs[i]
		*m = mmsghdr{}
		m.hdr.Name = (*byte)(unsafe.Pointer(&p.to.raw))
		m.hdr.Namelen = p.to.len
		if iv > first {
			m.hdr.Iov = &b.iovs[first]
			m.hdr.SetIovlen(iv - first)
		}
		if n > 1 {
			putGSOSize(&b.oobs[i], uint16(p.hdrLen+len(p.payload)))
			m.hdr.Control = &b.oobs[i][0]
			m.hdr.SetControllen(unix.CmsgSpace(2))
		}
		next += n
	}
	return next
}

// outPacket is one datagram queued for the next sendmmsg: an optional 4-byte TFTP header
// and a payload, the payload a slice of the shared file (DATA) or a prepared packet.
type outPacket struct {
	to      *sockaddr
	hdr     [4]byte
	hdrLen  int
	payload []byte
}

// reportUnreachable asks the kernel to queue the ICMP errors our datagrams cause
// (IP_RECVERR): an unconnected socket otherwise never hears that a client's port is
// closed, and its transfer would live through the whole backoff.
func (c *batchConn) reportUnreachable() error {
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		if c.v6 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// closedPorts drains the socket's error queue and calls gone for each destination that
// answered "port unreachable": a client that went away.
func (c *batchConn) closedPorts(gone func(netip.AddrPort)) {
	var (
		sa  sockaddr
		buf [64]byte
		oob [256]byte
	)
	_ = c.raw.Read(func(fd uintptr) bool {
		for {
			iov := unix.Iovec{Base: &buf[0]}
			iov.SetLen(len(buf))
			msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&sa.raw)), Namelen: unix.SizeofSockaddrInet6, Iov: &iov, Control: &oob[0]}
			msg.SetIovlen(1)
			msg.SetControllen(len(oob))
			_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				return true // the queue is empty: never park here
			}
			cmsgs, err := unix.ParseSocketControlMessage(oob[:msg.Controllen])
			if err != nil {
				continue
			}
			for _, cm := range cmsgs {
				isErr := (cm.Header.Level == unix.SOL_IP && cm.Header.Type == unix.IP_RECVERR) ||
					(cm.Header.Level == unix.SOL_IPV6 && cm.Header.Type == unix.IPV6_RECVERR)
				if !isErr || len(cm.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
					continue
				}
				ee := (*unix.SockExtendedErr)(unsafe.Pointer(&cm.Data[0]))
				if syscall.Errno(ee.Errno) != unix.ECONNREFUSED {
					continue // a route or host error may pass: the timers decide
				}
				// msg_name is where the datagram that caused the error was going.
				if ap, ok := sa.addrPort(); ok {
					gone(ap)
				}
			}
		}
	})
}
