package boot

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// transfer is one read transfer in flight: who it is for, what it sends, where it is in
// the file and when it next gives up waiting. It does no I/O: its shard feeds it the ACKs
// and the clock and sends the packets it queues. The file bytes are the shared snapshot,
// sent straight from it: each DATA datagram is gathered from a 4-byte header and a slice
// of the file, so a transfer copies nothing and its state stays a couple of hundred bytes
// whatever the blksize or windowsize.
type transfer struct {
	shard *tftpShard // set once, when it is placed
	peer  netip.AddrPort
	to    sockaddr // peer, in the kernel's form
	file  string
	data  []byte
	opts  tftpOptions

	blocks int // DATA blocks in the file: the last one is shorter than blksize, maybe empty
	acked  int // highest block acknowledged in order (0: none, or the OACK)

	// retransmits counts blocks (or OACKs) sent again after a timeout or a gap report.
	retransmits int

	// With options, the OACK goes first and is acknowledged as block 0 (RFC 2347).
	oackPending bool
	// gapHandled is set after we resent from a gap report (a duplicate ACK with a window
	// larger than 1), so later copies of the same ACK do not each trigger a window.
	gapHandled bool
	timeout    time.Duration // the current wait for an ACK: doubles with each resend
	tries      int           // resends of the current window without progress
	deadline   time.Duration // on the shard's clock: when the current wait ends
}

// errClientGone means the client stopped answering (retries exhausted) or its port is
// closed (ICMP port unreachable).
var errClientGone = errors.New("client stopped answering")

// errClientAbort means the client sent an ERROR packet, or something that is not an ACK.
var errClientAbort = errors.New("client aborted the transfer")

// errIllegalOp is the answer to a request or DATA on a transfer port (RFC 1350).
var errIllegalOp = errorPacket(errCodeIllegalOp, "illegal TFTP operation")

// maxBackoff caps the retransmission timeout's doubling: a firmware client gives up long
// before, and a later retry only adds to a storm's backlog.
const maxBackoff = 16 * time.Second

func newTransfer(peer netip.AddrPort, v6 bool, file string, data []byte, opts tftpOptions, now time.Duration) *transfer {
	return &transfer{
		peer: peer, to: sockaddrOf(peer, v6), file: file, data: data, opts: opts,
		blocks:      len(data)/opts.blksize + 1,
		oackPending: opts.oack != nil,
		timeout:     opts.timeout,
		deadline:    now + opts.timeout,
	}
}

// ackResult is what a packet from the client means for its transfer.
type ackResult int

const (
	ackIgnored ackResult = iota // nothing to do: a stale, duplicate or runt packet
	ackSend                     // progress (or a gap report): send the window now due
	ackDone                     // the last block is acknowledged
	ackAbort                    // the client sent ERROR
	ackIllegal                  // not an ACK: answer with ERROR and end the transfer
	ackFailed                   // handling it panicked: the transfer is abandoned
)

// onPacket takes a datagram from the client. The timeout resets when the client makes
// progress, so a loaded server never answers its own slowness with a flood of duplicate
// blocks.
func (t *transfer) onPacket(p []byte, now time.Duration) ackResult {
	if len(p) < 4 {
		return ackIgnored // a runt: not an ACK we can act on
	}
	switch binary.BigEndian.Uint16(p) {
	case opACK:
	case opERROR:
		return ackAbort
	default:
		return ackIllegal
	}
	ack := binary.BigEndian.Uint16(p[2:])
	if t.oackPending {
		if ack != 0 {
			return ackIgnored // not yet the OACK's acknowledgement
		}
		t.oackPending = false
	} else {
		// Block numbers wrap at 65536 (RFC 1350 leaves this to practice; everyone rolls
		// over to 0): place the ACK relative to what is in flight.
		ahead := int(ack - uint16(t.acked))
		sentTo := min(t.acked+t.opts.window, t.blocks)
		switch {
		case ahead > sentTo-t.acked:
			return ackIgnored // stale, or nothing we sent
		case ahead == 0:
			// A duplicate. With windowsize 1 it is only the echo of a late or resent
			// block, and answering it is the Sorcerer's Apprentice bug (RFC 1123
			// 4.2.3.1): ignore it and let the timer resend. With a window it is the
			// client reporting a gap (RFC 7440): resend once, from the block after it.
			if t.opts.window == 1 || t.gapHandled {
				return ackIgnored
			}
			t.gapHandled = true
			t.retransmits += sentTo - t.acked
		default:
			t.acked += ahead
			t.gapHandled = false
			if t.acked == t.blocks {
				return ackDone
			}
			if t.acked < sentTo {
				// A partial window acknowledged: the client saw a gap; the rest is
				// sent again.
				t.retransmits += sentTo - t.acked
				t.gapHandled = true
			}
		}
	}
	t.tries = 0
	t.timeout = t.opts.timeout
	t.deadline = now + t.timeout
	return ackSend
}

// onTimeout is called once the deadline has passed: false when the retries are spent and
// the client counts as gone, else the window (or OACK) is due again, after a doubled wait
// (RFC 2349's timeout with exponential backoff).
func (t *transfer) onTimeout(now time.Duration) bool {
	t.tries++
	if t.tries > t.opts.retries {
		return false
	}
	t.timeout = min(t.timeout*2, maxBackoff)
	t.deadline = now + t.timeout
	t.retransmits += t.inFlight()
	return true
}

// inFlight is how many packets a retransmission resends.
func (t *transfer) inFlight() int {
	if t.oackPending {
		return 1
	}
	return min(t.acked+t.opts.window, t.blocks) - t.acked
}

// queue appends what is due now to out: the OACK while it is unacknowledged, else the
// blocks after the last acknowledged one, up to windowsize of them.
func (t *transfer) queue(out []outPacket) []outPacket {
	if t.oackPending {
		return append(out, outPacket{to: &t.to, payload: t.opts.oack})
	}
	bs := t.opts.blksize
	for b, n := t.acked+1, 0; b <= t.blocks && n < t.opts.window; b, n = b+1, n+1 {
		start := (b - 1) * bs
		end := min(start+bs, len(t.data))
		p := outPacket{to: &t.to, hdrLen: 4, payload: t.data[start:end]}
		binary.BigEndian.PutUint16(p.hdr[:], opDATA)
		binary.BigEndian.PutUint16(p.hdr[2:], uint16(b))
		out = append(out, p)
	}
	return out
}

// lastSent tells whether the last block has gone out at least once.
func (t *transfer) lastSent() bool {
	return !t.oackPending && t.acked+t.opts.window >= t.blocks
}

// sent is how many file bytes the client has acknowledged.
func (t *transfer) sent() int64 {
	return int64(min(t.acked*t.opts.blksize, len(t.data)))
}
