package boot

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A window's blocks go out as one UDP GSO datagram (UDP_SEGMENT, Linux 4.18): the
// kernel walks its UDP and IP send path once for the whole window and cuts it into
// datagrams of gso_size bytes at the device (or in software where the device cannot),
// so each block is still its own DATA datagram on the wire. Sent one by one, every
// block paid that path and, on loopback or a veth, the receive path too before the next
// one left: the window's first block reached the client only after the whole window's
// sendmmsg, and a windowsize 16 transfer cost about 10 µs a block against one
// scheduler hand-off for a lock-step block. The iovec interleaves each block's 4-byte
// header with its slice of the shared file, so nothing is copied.

// gsoCmsgSpace holds one control message with a uint16 (CMSG_SPACE(2) on 64-bit
// Linux; more than the 32-bit one).
const gsoCmsgSpace = 24

// gsoMaxSegments is the kernel's UDP_MAX_SEGMENTS (64; newer kernels take 128).
const gsoMaxSegments = 64

// gsoMaxBytes keeps a GSO datagram within what one IPv6 or IPv4 UDP datagram may carry.
const gsoMaxBytes = 65000

// gsoRun is how many packets from pkts[0] go out as one GSO datagram: a run of DATA
// blocks to the same peer, every one the size of the first but the last, which may be
// shorter (a file's last block). 1 means pkts[0] goes alone.
func gsoRun(pkts []outPacket) int {
	p0 := &pkts[0]
	if p0.hdrLen == 0 {
		return 1 // an OACK or ERROR
	}
	seg := p0.hdrLen + len(p0.payload)
	limit := min(len(pkts), gsoMaxSegments, gsoMaxBytes/seg)
	n := 1
	for n < limit {
		p := &pkts[n]
		size := p.hdrLen + len(p.payload)
		if p.to != p0.to || p.hdrLen == 0 || size > seg {
			break
		}
		n++
		if size < seg {
			break // only the last segment may be short
		}
	}
	return n
}

// putGSOSize writes the UDP_SEGMENT control message for segments of size bytes.
func putGSOSize(oob *[gsoCmsgSpace]byte, size uint16) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = size
}

// gsoUnsupported tells whether a GSO send failed because this socket can never send one
// (a kernel without UDP_SEGMENT, or a device without checksum offload: EIO), rather than
// for this datagram alone (EINVAL: segments larger than the path MTU, say).
func gsoUnsupported(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}

// gsoSupported asks the kernel whether the socket knows UDP_SEGMENT. A kernel older than
// 4.18 would not refuse the control message but ignore it, and send a whole window as
// one oversized datagram.
func gsoSupported(raw syscall.RawConn) bool {
	var serr error
	if err := raw.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}
