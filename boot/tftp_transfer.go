package boot

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// transfer is one read transfer in flight: what it sends, where it is in the file, and
// small fixed buffers. The file bytes are the shared snapshot, sent straight from it:
// each DATA datagram is gathered from a 4-byte header and a slice of the file, so a
// transfer copies nothing and its state stays a few hundred bytes whatever the blksize.
type transfer struct {
	conn  *net.UDPConn
	batch *ipv4.PacketConn // sendmmsg: a whole window in one syscall
	data  []byte
	opts  tftpOptions

	blocks int // DATA blocks in the file: the last one is shorter than blksize, maybe empty
	acked  int // highest block acknowledged in order (0: none, or the OACK)

	// retransmits counts blocks (or OACKs) sent again after a timeout or a gap report.
	retransmits int

	hdrs []([4]byte)
	msgs []ipv4.Message
	bufs [][2][]byte
	rbuf [maxRequestLen]byte
}

// errClientGone means the client stopped answering (retries exhausted) or its port is
// closed (ICMP port unreachable on the connected socket).
var errClientGone = errors.New("client stopped answering")

// errClientAbort means the client sent an ERROR packet.
var errClientAbort = errors.New("client aborted the transfer")

// maxBackoff caps the retransmission timeout's doubling: a firmware client gives up long
// before, and a later retry only adds to a storm's backlog.
const maxBackoff = 16 * time.Second

func newTransfer(conn *net.UDPConn, data []byte, opts tftpOptions) *transfer {
	w := opts.window
	t := &transfer{
		conn: conn, batch: ipv4.NewPacketConn(conn), data: data, opts: opts,
		blocks: len(data)/opts.blksize + 1,
		hdrs:   make([][4]byte, w), msgs: make([]ipv4.Message, w), bufs: make([][2][]byte, w),
	}
	for i := range t.msgs {
		t.msgs[i].Buffers = t.bufs[i][:]
	}
	return t
}

// run sends the file and returns once the last block is acknowledged, the client aborts,
// or it stops answering. The timeout doubles with each retransmission of the same window
// (RFC 2349's timeout, exponential backoff) and resets when the client makes progress, so
// a loaded server never answers its own slowness with a flood of duplicate blocks.
func (t *transfer) run() error {
	// With options, the OACK goes first and is acknowledged as block 0 (RFC 2347).
	oackPending := t.opts.oack != nil
	timeout := t.opts.timeout
	tries := 0
	// gapHandled is set after we resent from a gap report (a duplicate ACK with a window
	// larger than 1), so later copies of the same ACK do not each trigger a window.
	gapHandled := false
	send := true
	for {
		if send {
			var err error
			if oackPending {
				_, err = t.conn.Write(t.opts.oack)
			} else {
				err = t.sendWindow()
			}
			if err != nil {
				return t.sendErr(err)
			}
			send = false
		}
		if err := t.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		n, err := t.conn.Read(t.rbuf[:])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tries++
				if tries > t.opts.retries {
					return errClientGone
				}
				timeout = min(timeout*2, maxBackoff)
				t.retransmits += t.inFlight(oackPending)
				send = true
				continue
			}
			return t.sendErr(err)
		}
		if n < 4 {
			continue // a runt: not an ACK we can act on
		}
		switch binary.BigEndian.Uint16(t.rbuf[:]) {
		case opACK:
		case opERROR:
			return errClientAbort
		default:
			// A request or DATA on a transfer port is a protocol error (RFC 1350).
			_, _ = t.conn.Write(errorPacket(errCodeIllegalOp, "illegal TFTP operation"))
			return errClientAbort
		}
		ack := binary.BigEndian.Uint16(t.rbuf[2:])
		if oackPending {
			if ack != 0 {
				continue // not yet the OACK's acknowledgement
			}
			oackPending = false
		} else {
			// Block numbers wrap at 65536 (RFC 1350 leaves this to practice; everyone
			// rolls over to 0): place the ACK relative to what is in flight.
			ahead := int(ack - uint16(t.acked))
			sentTo := min(t.acked+t.opts.window, t.blocks)
			switch {
			case ahead > sentTo-t.acked:
				continue // stale, or nothing we sent
			case ahead == 0:
				// A duplicate. With windowsize 1 it is only the echo of a late or resent
				// block, and answering it is the Sorcerer's Apprentice bug (RFC 1123
				// 4.2.3.1): ignore it and let the timer resend. With a window it is the
				// client reporting a gap (RFC 7440): resend once, from the block after it.
				if t.opts.window == 1 || gapHandled {
					continue
				}
				gapHandled = true
				t.retransmits += sentTo - t.acked
			default:
				t.acked += ahead
				gapHandled = false
				if t.acked == t.blocks {
					return nil
				}
				if t.acked < sentTo {
					// A partial window acknowledged: the client saw a gap; the rest
					// is sent again.
					t.retransmits += sentTo - t.acked
					gapHandled = true
				}
			}
		}
		tries = 0
		timeout = t.opts.timeout
		send = true
	}
}

// inFlight is how many packets a retransmission resends.
func (t *transfer) inFlight(oack bool) int {
	if oack {
		return 1
	}
	return min(t.acked+t.opts.window, t.blocks) - t.acked
}

// sendWindow sends the blocks after the last acknowledged one, up to windowsize of them,
// in one sendmmsg.
func (t *transfer) sendWindow() error {
	bs := t.opts.blksize
	n := 0
	for b := t.acked + 1; b <= t.blocks && n < t.opts.window; b++ {
		start := (b - 1) * bs
		end := min(start+bs, len(t.data))
		h := &t.hdrs[n]
		binary.BigEndian.PutUint16(h[:], opDATA)
		binary.BigEndian.PutUint16(h[2:], uint16(b))
		t.bufs[n][0], t.bufs[n][1] = h[:], t.data[start:end]
		n++
	}
	for sent := 0; sent < n; {
		k, err := t.batch.WriteBatch(t.msgs[sent:n], 0)
		if err != nil {
			return err
		}
		sent += k
	}
	return nil
}

// sendErr turns a socket error into the transfer's end: a refused port means the client
// is gone (its ICMP port unreachable came back on our connected socket).
func (t *transfer) sendErr(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return errClientGone
	}
	return err
}
