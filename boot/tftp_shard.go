package boot

import (
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// tftpShard is one transfer socket and the one goroutine that serves every transfer on
// it. A lock-step client costs a round trip per block, and with a goroutine and a socket
// per transfer each round trip cost a goroutine wake-up, a read that found nothing, a
// poller event, a read, a deadline re-armed and a send: under a storm the server spent
// its time in the scheduler and the syscall entry. Here the ACKs of every transfer on the
// shard come in with one recvmmsg, the blocks they call for go out with one sendmmsg, and
// the retransmission timers are a deadline per transfer checked on a coarse tick, not a
// runtime timer re-armed per block.
//
// The shard's port is the server's TID for its transfers (RFC 1350 asks only that it is
// not 69); a transfer is known by its client's address and port, and a datagram from any
// other is dropped and counted, as the kernel did for the connected socket per transfer.
type tftpShard struct {
	srv  *TFTPServer
	conn *net.UDPConn
	bc   *batchConn
	tick time.Duration

	mu     sync.Mutex
	byPeer map[netip.AddrPort]*transfer
}

// recvBatchSize is how many datagrams one recvmmsg takes: the ACKs of a storm's lock-step
// transfers arrive together while the previous batch is being answered.
const recvBatchSize = 64

// scanTick is how often a shard looks for transfers whose ACK is overdue: an eighth of
// the base timeout, so a resend is at most that late, and at most four times a second.
func scanTick(timeout time.Duration) time.Duration {
	return max(time.Millisecond, min(timeout/8, 250*time.Millisecond))
}

func newTFTPShard(srv *TFTPServer, conn *net.UDPConn) (*tftpShard, error) {
	bc, err := newBatchConn(conn)
	if err != nil {
		return nil, err
	}
	if err := bc.reportUnreachable(); err != nil {
		return nil, err
	}
	return &tftpShard{srv: srv, conn: conn, bc: bc, tick: scanTick(srv.cfg.Timeout),
		byPeer: make(map[netip.AddrPort]*transfer)}, nil
}

// now is the transfers' clock: monotonic time since the server started.
func (s *TFTPServer) now() time.Duration { return time.Since(s.epoch) }

// ended is a transfer that left the shard, with why (nil: served).
type ended struct {
	t   *transfer
	err error
}

// errServerStopping ends the transfers in flight at shutdown.
var errServerStopping = errors.New("server stopping")

// errTransferPanicked ends a transfer whose handling panicked.
var errTransferPanicked = errors.New("handling the transfer panicked")

// startTransfer registers t on a shard and sends its first packet (the OACK, or the first
// window), from the request loop's goroutine. False means it was not started: every shard
// already has a transfer for this client's port (a request it keeps repeating).
//
// A client is known by its address and port on a shard, and a firmware reads its next
// file from the port it used for the last one, so a new request never goes to a shard
// where that port has a transfer still in flight: the old one's late ACKs or ERROR must
// not land on the new one. (RFC 1350 gives each transfer a fresh server TID for the same
// reason.) A transfer there whose last block has gone out is done for its client, which
// has moved on even if its last ACK is still on the way: it ends as served.
func (s *TFTPServer) startTransfer(t *transfer, sb *sendBatch) bool {
	pkts := t.queue(nil)
	n := len(s.shards)
	first := int(maphash.Comparable(s.seed, t.peer) % uint64(n))
	var placed bool
	var moved []*transfer
	for i := range n {
		sh := s.shards[(first+i)%n]
		sh.mu.Lock()
		switch old := sh.byPeer[t.peer]; {
		case old == nil && !placed:
			// Counted as it becomes visible to the shard, which alone can end it
			// from now on: the count never dips below zero, and the MaxTransfers
			// check (on this goroutine) stays exact.
			s.stats.active.Add(1)
			s.stats.negotiated(t.opts)
			sh.byPeer[t.peer] = t
			t.shard = sh
			placed = true
		case old != nil && old.lastSent():
			delete(sh.byPeer, t.peer)
			moved = append(moved, old)
		}
		sh.mu.Unlock()
	}
	for _, old := range moved {
		s.finish(old, nil)
	}
	if !placed {
		return false
	}
	if _, err := t.shard.bc.write(sb, pkts); err != nil {
		s.log.Warn("tftp send", slog.String("client", t.peer.String()), slog.Any("err", err))
	}
	return true
}

// run serves the shard's transfers until its socket is closed; those still in flight
// then end as failed.
func (sh *tftpShard) run() {
	rb := newRecvBatch(recvBatchSize, maxRequestLen)
	var (
		sb   sendBatch
		out  []outPacket
		done []ended
	)
	nextScan := sh.srv.now() + sh.tick
	_ = sh.conn.SetReadDeadline(sh.srv.epoch.Add(nextScan))
	for {
		n, err := sh.bc.read(rb)
		now := sh.srv.now()
		if err != nil {
			n = 0
			if errors.Is(err, net.ErrClosed) {
				break
			}
		}
		var gone []netip.AddrPort
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// An ICMP error queued on the socket: a port unreachable means that
			// client is gone, and its transfer ends now rather than after the
			// backoff. Other errors are left to the timers.
			sh.bc.closedPorts(func(ap netip.AddrPort) { gone = append(gone, ap) })
		}
		sh.mu.Lock()
		for _, ap := range gone {
			if t := sh.byPeer[ap]; t != nil {
				delete(sh.byPeer, ap)
				done = append(done, ended{t, errClientGone})
			}
		}
		for i := range n {
			out, done = sh.handle(rb, i, now, out, done)
		}
		scanned := now >= nextScan
		if scanned {
			out, done = sh.scan(now, out, done)
			nextScan = now + sh.tick
		}
		sh.mu.Unlock()
		if scanned {
			_ = sh.conn.SetReadDeadline(sh.srv.epoch.Add(nextScan))
		}
		if len(out) > 0 {
			if _, err := sh.bc.write(&sb, out); err != nil && !errors.Is(err, net.ErrClosed) {
				sh.srv.log.Warn("tftp send", slog.Any("err", err))
			}
			clear(out) // drop the references to ended transfers and file snapshots
			out = out[:0]
		}
		for _, e := range done {
			sh.srv.finish(e.t, e.err)
		}
		clear(done)
		done = done[:0]
	}
	sh.mu.Lock()
	for peer, t := range sh.byPeer {
		delete(sh.byPeer, peer)
		done = append(done, ended{t, errServerStopping})
	}
	sh.mu.Unlock()
	for _, e := range done {
		sh.srv.finish(e.t, e.err)
	}
}

// handle acts on datagram i of the batch. Called with sh.mu held.
func (sh *tftpShard) handle(rb *recvBatch, i int, now time.Duration, out []outPacket, done []ended) ([]outPacket, []ended) {
	peer, ok := rb.addrs[i].addrPort()
	t := sh.byPeer[peer]
	if !ok || t == nil {
		// Not from a transfer's client: another host, or a transfer already ended.
		sh.srv.stats.strays.Add(1)
		return out, done
	}
	p := rb.bufs[i][:min(int(rb.msgs[i].n), len(rb.bufs[i]))]
	res, out := sh.step(t, p, now, out)
	switch res {
	case ackDone:
		delete(sh.byPeer, peer)
		done = append(done, ended{t, nil})
	case ackAbort:
		delete(sh.byPeer, peer)
		done = append(done, ended{t, errClientAbort})
	case ackIllegal:
		// A request or DATA on a transfer port is a protocol error (RFC 1350).
		delete(sh.byPeer, peer)
		out = append(out, outPacket{to: &t.to, payload: errIllegalOp})
		done = append(done, ended{t, errClientAbort})
	case ackFailed:
		delete(sh.byPeer, peer)
		done = append(done, ended{t, errTransferPanicked})
	}
	return out, done
}

// step feeds one packet to t and queues what it calls for. A panic costs that transfer
// (abandoned, counted, logged), not the shard.
func (sh *tftpShard) step(t *transfer, p []byte, now time.Duration, out []outPacket) (res ackResult, o []outPacket) {
	res, o = ackFailed, out
	defer sh.srv.recoverTransfer(t.file)
	r := t.onPacket(p, now)
	if r == ackSend {
		o = t.queue(o)
	}
	return r, o
}

// resend is step for a transfer whose wait has ended: false when its retries are spent
// (or handling it panicked).
func (sh *tftpShard) resend(t *transfer, now time.Duration, out []outPacket) (ok bool, o []outPacket) {
	o = out
	defer sh.srv.recoverTransfer(t.file)
	if !t.onTimeout(now) {
		return false, o
	}
	return true, t.queue(o)
}

// scan resends for every transfer whose wait has ended, and gives up on those whose
// retries are spent. Called with sh.mu held.
func (sh *tftpShard) scan(now time.Duration, out []outPacket, done []ended) ([]outPacket, []ended) {
	for peer, t := range sh.byPeer {
		if t.deadline > now {
			continue
		}
		var ok bool
		if ok, out = sh.resend(t, now, out); !ok {
			delete(sh.byPeer, peer)
			done = append(done, ended{t, errClientGone})
		}
	}
	return out, done
}

// finish accounts for a transfer that left its shard: counters and the log line.
func (s *TFTPServer) finish(t *transfer, err error) {
	s.stats.active.Add(-1)
	sent := t.sent()
	s.stats.bytes.Add(uint64(sent))
	s.stats.retransmits.Add(uint64(t.retransmits))
	client := t.peer.String()
	if err != nil {
		s.stats.failed.Add(1)
		s.log.Warn("tftp transfer failed", slog.String("client", client), slog.String("file", t.file),
			slog.Int64("sent", sent), slog.Int("size", len(t.data)), slog.Int("blksize", t.opts.blksize),
			slog.Int("windowsize", t.opts.window), slog.Int("retransmits", t.retransmits), slog.Any("err", err))
		return
	}
	s.stats.served.Add(1)
	s.log.Info("tftp served", slog.String("client", client), slog.String("file", t.file),
		slog.Int("bytes", len(t.data)), slog.Int("blksize", t.opts.blksize), slog.Int("windowsize", t.opts.window),
		slog.Int("retransmits", t.retransmits))
}
