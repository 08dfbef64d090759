package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tftpLoop serves the reads of its share of a TFTPLoad's machines on one socket and one
// goroutine: each turn it takes the datagrams waiting with one recvmmsg (when none is,
// it waits in the runtime's poller, at most its timer tick), hands each to its machine's
// tftpRead by destination address, re-sends for the machines whose deadline passed
// (checked on the tick, not with a timer per machine), and sends every ACK and request
// the turn produced with one sendmmsg. A turn allocates nothing per block; its arrays are
// the loop's own. It waits in the poller rather than blocking a locked thread in
// recvmmsg: a P held by a thread blocked in a syscall is handed on only when the
// runtime's monitor notices, up to 10 ms later, which starved a server in the same
// process (the tests') of CPU.
type tftpLoop struct {
	sock     *os.File
	raw      syscall.RawConn
	fd       uintptr
	req      TFTPRequest
	want     []byte // the file's bytes, when the run checks content
	next     *atomic.Int64
	total    int64
	machines []loopMachine
	base     uint32 // the first machine's address as a number
	epoch    time.Time
	tick     time.Duration

	// Receive side: recvBatch datagrams per call.
	rmsgs  []mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet4
	roobs  [][64]byte
	rbufs  [][]byte

	// Send side: the packets queued this turn; flushed when full, never grown, so the
	// pointers handed to the kernel stay put.
	outs  []loopOut
	smsgs []mmsghdr
	siovs []unix.Iovec

	busy     int
	stopping bool  // the run's context ended: no read starts any more
	fatal    error // a send that cannot go on (the socket is gone)
	res      TFTPLoadResult
	lat      []time.Duration
}

// loopMachine is one simulated machine: its read in progress and its source address.
type loopMachine struct {
	read     tftpRead
	check    contentCheck
	oob      [32]byte // IP_PKTINFO: send from this machine's address
	busy     bool
	started  time.Duration // since the loop's epoch
	deadline time.Duration
}

// loopOut is one datagram to send: an ACK copied in (a machine may ACK twice in a turn),
// or a request, which stays the same for every read of a run.
type loopOut struct {
	m   *loopMachine
	ack [4]byte
	rrq []byte
	to  unix.RawSockaddrInet4
}

const (
	recvBatch = 64
	sendBatch = 256
)

// loopTick is how often a loop looks for machines whose answer is overdue: an eighth of
// the timeout (a re-send is at most that late), at most every 100 ms.
func loopTick(timeout time.Duration) time.Duration {
	return max(time.Millisecond, min(timeout/8, 100*time.Millisecond))
}

func newTFTPLoop(sock *os.File, first netip.Addr, machines int, req TFTPRequest, want []byte, next *atomic.Int64, total int64) *tftpLoop {
	var probe tftpRead
	probe.start(req, nil)
	req = probe.req // with the defaults filled in
	b := first.As4()
	l := &tftpLoop{sock: sock, req: req, want: want, next: next, total: total,
		machines: make([]loopMachine, machines), base: binary.BigEndian.Uint32(b[:]), tick: loopTick(req.Timeout),
		rmsgs: make([]mmsghdr, recvBatch), riovs: make([]unix.Iovec, recvBatch), rnames: make([]unix.RawSockaddrInet4, recvBatch),
		roobs: make([][64]byte, recvBatch), rbufs: make([][]byte, recvBatch),
		outs: make([]loopOut, 0, sendBatch), smsgs: make([]mmsghdr, sendBatch), siovs: make([]unix.Iovec, sendBatch)}
	size := probe.bufSize()
	mem := make([]byte, recvBatch*size)
	for i := range recvBatch {
		l.rbufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
		l.riovs[i].Base = &l.rbufs[i][0]
		l.riovs[i].SetLen(size)
		l.rmsgs[i].hdr.Iov = &l.riovs[i]
		l.rmsgs[i].hdr.SetIovlen(1)
		l.rmsgs[i].hdr.Name = (*byte)(unsafe.Pointer(&l.rnames[i]))
		l.rmsgs[i].hdr.Control = &l.roobs[i][0]
	}
	for i := range l.machines {
		m := &l.machines[i]
		putPktinfo(m.oob[:], addrAdd(first, uint32(i)).As4())
		m.check.want = want
	}
	return l
}

// run serves reads until none is left to start and none is in flight, or ctx ends.
func (l *tftpLoop) run(ctx context.Context) error {
	raw, err := l.sock.SyscallConn()
	if err != nil {
		return fmt.Errorf("loadgen: tftp loop: %w", err)
	}
	l.raw = raw
	// The descriptor itself, for the raw calls of each turn (os.File.Fd would make the
	// socket blocking).
	if err := raw.Control(func(fd uintptr) { l.fd = fd }); err != nil {
		return fmt.Errorf("loadgen: tftp loop: %w", err)
	}
	l.epoch = time.Now()
	for i := range l.machines {
		l.startNext(&l.machines[i], 0)
	}
	nextScan := l.tick
	for {
		if err := l.flush(); err != nil {
			return err
		}
		if l.busy == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			l.stopping = true
			now := time.Since(l.epoch)
			for i := range l.machines {
				if m := &l.machines[i]; m.busy {
					l.finish(m, now, err)
				}
			}
			return nil
		}
		n, err := l.recv()
		if err != nil {
			return err
		}
		now := time.Since(l.epoch)
		for i := range n {
			l.deliver(i, now)
		}
		if now >= nextScan {
			l.scan(now)
			nextScan = now + l.tick
		}
	}
}

// recv takes the datagrams waiting, or waits up to a tick for some, and returns how many
// it took (0 on the tick).
func (l *tftpLoop) recv() (int, error) {
	for i := range l.rmsgs {
		l.rmsgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		l.rmsgs[i].hdr.SetControllen(len(l.roobs[i]))
		l.rmsgs[i].hdr.Flags = 0
	}
	// Under load the next datagrams are usually waiting already: a raw call takes them
	// without the runtime's bookkeeping. Only when none is does the loop park.
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, l.fd, uintptr(unsafe.Pointer(&l.rmsgs[0])), uintptr(len(l.rmsgs)),
		unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		if err := l.sock.SetReadDeadline(time.Now().Add(l.tick)); err != nil {
			return 0, fmt.Errorf("loadgen: tftp loop: %w", err)
		}
		err := l.raw.Read(func(fd uintptr) bool {
			r, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&l.rmsgs[0])), uintptr(len(l.rmsgs)),
				unix.MSG_DONTWAIT, 0, 0)
			return e != unix.EAGAIN
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil // the tick: the caller's turn checks its timers
		}
		if err != nil {
			return 0, fmt.Errorf("loadgen: tftp loop: %w", err)
		}
	}
	switch e {
	case 0:
		return int(r), nil
	case unix.EINTR:
		return 0, nil
	default:
		return 0, fmt.Errorf("loadgen: tftp recvmmsg: %w", e)
	}
}

// deliver hands received datagram i to its machine.
func (l *tftpLoop) deliver(i int, now time.Duration) {
	msg := &l.rmsgs[i].hdr
	dst, ok := pktinfoDst(l.roobs[i][:min(int(msg.Controllen), len(l.roobs[i]))])
	if !ok {
		return
	}
	k := binary.BigEndian.Uint32(dst[:]) - l.base
	if k >= uint32(len(l.machines)) {
		return // for no machine of ours
	}
	m := &l.machines[k]
	if !m.busy {
		return // a late datagram of a read that has ended
	}
	m.deadline = now + l.req.Timeout
	reply, done, err := m.read.receive(l.rbufs[i][:l.rmsgs[i].n], addrPort4(&l.rnames[i]))
	if reply != nil {
		l.queue(m, reply, m.read.peer)
	}
	if err != nil || done {
		l.finish(m, now, err)
	}
}

// scan re-sends for every machine that heard nothing for the timeout.
func (l *tftpLoop) scan(now time.Duration) {
	for i := range l.machines {
		m := &l.machines[i]
		if !m.busy || now < m.deadline {
			continue
		}
		pkt, to, err := m.read.timeout()
		if err != nil {
			l.finish(m, now, err)
			continue
		}
		m.deadline = now + l.req.Timeout
		l.queue(m, pkt, to)
	}
}

// startNext starts m's next read if the run has one left.
func (l *tftpLoop) startNext(m *loopMachine, now time.Duration) {
	if l.stopping || l.next.Add(1) > l.total {
		return
	}
	var w io.Writer = io.Discard
	if l.want != nil {
		m.check.off = 0
		w = &m.check
	}
	pkt, to := m.read.start(l.req, w)
	m.busy, m.started, m.deadline = true, now, now+l.req.Timeout
	l.busy++
	l.queue(m, pkt, to)
}

// finish records m's read, ended with err or whole, and starts m's next one on the same
// turn, as TFTPLoad's goroutine per socket did before.
func (l *tftpLoop) finish(m *loopMachine, now time.Duration, err error) {
	m.busy = false
	l.busy--
	if err == nil && l.want != nil && m.check.off != len(l.want) {
		err = fmt.Errorf("tftp %s: %d bytes, the file has %d", l.req.File, m.check.off, len(l.want))
	}
	l.res.Resends += m.read.res.Timeouts
	l.res.Duplicates += m.read.res.Duplicates
	if err != nil {
		l.res.Failures++
		if l.res.Err == nil {
			l.res.Err = err
		}
	} else {
		l.res.Transfers++
		l.res.Bytes += m.read.res.Bytes
		l.lat = append(l.lat, now-m.started)
	}
	l.startNext(m, now)
}

// queue adds a datagram for m to this turn's sends.
func (l *tftpLoop) queue(m *loopMachine, pkt []byte, to netip.AddrPort) {
	if len(l.outs) == cap(l.outs) {
		if err := l.send(); err != nil && l.fatal == nil {
			l.fatal = err
		}
	}
	o := loopOut{m: m, to: sockaddr4(to)}
	if len(pkt) == len(o.ack) {
		copy(o.ack[:], pkt)
	} else {
		o.rrq = pkt
	}
	l.outs = append(l.outs, o)
}

// flush sends what is queued, including what a failed send queued in turn.
func (l *tftpLoop) flush() error {
	for len(l.outs) > 0 && l.fatal == nil {
		if err := l.send(); err != nil {
			return err
		}
	}
	return l.fatal
}

// send sends the queued datagrams with sendmmsg. A datagram the kernel refuses fails its
// machine's read, as a failed send fails TFTPGet.
func (l *tftpLoop) send() error {
	outs := l.outs
	for i := range outs {
		o := &outs[i]
		if o.rrq != nil {
			l.siovs[i].Base = &o.rrq[0]
			l.siovs[i].SetLen(len(o.rrq))
		} else {
			l.siovs[i].Base = &o.ack[0]
			l.siovs[i].SetLen(len(o.ack))
		}
		h := &l.smsgs[i].hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&o.to)), Namelen: unix.SizeofSockaddrInet4,
			Iov: &l.siovs[i], Control: &o.m.oob[0]}
		h.SetIovlen(1)
		h.SetControllen(pktinfoSpace)
	}
	var refused []*loopMachine
	var refusal error
	for sent := 0; sent < len(outs); {
		r, e, err := l.sendmmsg(l.smsgs[sent:len(outs)])
		switch {
		case err != nil:
			return err
		case e == unix.EINTR:
		case e == unix.EBADF:
			return fmt.Errorf("loadgen: tftp sendmmsg: %w", e)
		case e != 0:
			refused = append(refused, outs[sent].m)
			refusal = e
			sent++
		default:
			sent += r
		}
	}
	l.outs = l.outs[:0]
	if len(refused) > 0 {
		now := time.Since(l.epoch)
		for _, m := range refused {
			if m.busy {
				l.finish(m, now, fmt.Errorf("tftp %s: send: %w", l.req.File, refusal))
			}
		}
	}
	return nil
}

// sendmmsg sends msgs, waiting in the runtime's poller if the socket's send buffer is
// full (what the loopback has not delivered yet).
func (l *tftpLoop) sendmmsg(msgs []mmsghdr) (int, syscall.Errno, error) {
	call := func(fd uintptr) (int, syscall.Errno) {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		return int(r), e
	}
	r, e := call(l.fd)
	if e != unix.EAGAIN {
		return r, e, nil
	}
	err := l.raw.Write(func(fd uintptr) bool {
		r, e = call(fd)
		return e != unix.EAGAIN
	})
	if err != nil {
		return 0, 0, fmt.Errorf("loadgen: tftp sendmmsg: %w", err)
	}
	return r, e, nil
}

// contentCheck is a read's writer when the run knows the file: each block must be the
// file's bytes at its offset.
type contentCheck struct {
	want []byte
	off  int
}

func (c *contentCheck) Write(p []byte) (int, error) {
	if c.off+len(p) > len(c.want) || !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		return 0, fmt.Errorf("bytes %d to %d differ from the file's", c.off, c.off+len(p))
	}
	c.off += len(p)
	return len(p), nil
}
