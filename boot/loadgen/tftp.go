package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// TFTPRequest is one read to perform with the minimal client below: RFC 1350 with the
// blksize, tsize and RFC 7440 windowsize options, the way EDK2's PXE client reads.
type TFTPRequest struct {
	Server     netip.AddrPort // the request port, usually :69
	File       string
	BlockSize  int           // 0: not asked (512)
	WindowSize int           // 0: not asked (1)
	Timeout    time.Duration // how long to wait before re-sending the last ACK; default 1s
	Retries    int           // re-sends before giving up; default 5
	// Drop, when set, sees each DATA block as it arrives; true discards it as if the
	// network had lost it (tests use it to make the server retransmit).
	Drop func(block uint16) bool
}

// TFTPResult is what a read observed.
type TFTPResult struct {
	Bytes      int64
	Options    map[string]string // the server's OACK; empty when it sent DATA at once
	Blocks     int               // DATA packets accepted
	Duplicates int               // DATA packets that were not the next block
	Acks       int               // ACKs sent (a window costs one)
	Timeouts   int               // times the request or the last ACK was re-sent for silence
}

var errTFTPServer = errors.New("tftp server error")

// TFTPGet reads req.File into w through conn, an unconnected UDP socket owned by this
// call. The server's transfer port (TID) is taken from its first answer; packets from
// anywhere else are ignored.
func TFTPGet(ctx context.Context, conn *net.UDPConn, req TFTPRequest, w io.Writer) (TFTPResult, error) {
	var r tftpRead
	pkt, to := r.start(req, w)
	buf := make([]byte, r.bufSize())
	if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
		return r.res, fmt.Errorf("tftp %s: send request: %w", req.File, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return r.res, err
		}
		conn.SetReadDeadline(time.Now().Add(r.req.Timeout))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return r.res, fmt.Errorf("tftp %s: %w", req.File, err)
			}
			pkt, to, err := r.timeout()
			if err != nil {
				return r.res, err
			}
			if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
				return r.res, fmt.Errorf("tftp %s: %w", req.File, err)
			}
			continue
		}
		reply, done, err := r.receive(buf[:n], from)
		if err != nil {
			return r.res, err
		}
		if reply != nil {
			if _, err := conn.WriteToUDPAddrPort(reply, r.peer); err != nil {
				return r.res, fmt.Errorf("tftp %s: %w", req.File, err)
			}
		}
		if done {
			return r.res, nil
		}
	}
}

// tftpRead is one read's protocol state, apart from any socket: TFTPGet drives one
// through its own socket and the runtime's poller, TFTPLoad's loops drive many through a
// few shared sockets (tftp_clients.go). Both check the same things: block numbers in
// order, no block longer than the blksize agreed, the total the OACK's tsize announced.
// Nothing here allocates per block.
type tftpRead struct {
	req             TFTPRequest
	w               io.Writer
	res             TFTPResult
	blksize, window int
	tsize           int64          // from the OACK; -1 when the server did not say
	peer            netip.AddrPort // the server's TID once it answered
	expect          uint16         // next block wanted
	inWindow        int            // blocks received since the last ACK
	gapReported     bool
	tries           int
	rrq             []byte // the request, rebuilt in place for each read
	ack             [4]byte
	last            []byte // what a timeout re-sends: the request, then the last ACK
	lastTo          netip.AddrPort
}

// start resets r for a read of req into w and returns the request to send and where.
func (r *tftpRead) start(req TFTPRequest, w io.Writer) ([]byte, netip.AddrPort) {
	if req.Timeout == 0 {
		req.Timeout = time.Second
	}
	if req.Retries == 0 {
		req.Retries = 5
	}
	rrq := append(r.rrq[:0], 0, 1)
	rrq = append(append(rrq, req.File...), 0)
	rrq = append(append(rrq, "octet"...), 0)
	opt := func(k string, v int) {
		rrq = append(append(rrq, k...), 0)
		rrq = append(strconv.AppendInt(rrq, int64(v), 10), 0)
	}
	if req.BlockSize > 0 {
		opt("blksize", req.BlockSize)
	}
	if req.WindowSize > 0 {
		opt("windowsize", req.WindowSize)
	}
	opt("tsize", 0)
	*r = tftpRead{req: req, w: w, res: TFTPResult{Options: map[string]string{}}, blksize: 512, window: 1,
		tsize: -1, expect: 1, rrq: rrq, last: rrq, lastTo: req.Server}
	return rrq, req.Server
}

// bufSize is how large a receive buffer must be for the blocks asked for (and a little
// more, so that a block longer than agreed shows as one).
func (r *tftpRead) bufSize() int { return max(r.req.BlockSize, 512) + 4 + 64 }

// sendAck makes the ACK of block the packet to send (to r.peer) and to re-send.
func (r *tftpRead) sendAck(block uint16) []byte {
	r.ack = [4]byte{0, 4, byte(block >> 8), byte(block)}
	r.last, r.lastTo = r.ack[:], r.peer
	r.res.Acks++
	return r.ack[:]
}

// timeout is called when nothing came for req.Timeout: it returns what to re-send and
// where, or an error once the retries are spent.
func (r *tftpRead) timeout() ([]byte, netip.AddrPort, error) {
	r.tries++
	if r.tries > r.req.Retries {
		return nil, netip.AddrPort{}, fmt.Errorf("tftp %s: no answer after %d tries (block %d)", r.req.File, r.tries, r.expect)
	}
	r.res.Timeouts++
	r.inWindow = 0
	if r.peer.IsValid() && r.res.Blocks > 0 {
		// RFC 7440: on a timeout, acknowledge the last block received in order, so the
		// server resends from the first one missing.
		return r.sendAck(r.expect - 1), r.peer, nil
	}
	return r.last, r.lastTo, nil
}

// receive takes one datagram from the network. It returns a packet to send to r.peer
// (an ACK) or nil, and done once the last block is in.
func (r *tftpRead) receive(pkt []byte, from netip.AddrPort) (reply []byte, done bool, err error) {
	if len(pkt) < 4 || (r.peer.IsValid() && from != r.peer) {
		return nil, false, nil
	}
	op := binary.BigEndian.Uint16(pkt)
	if !r.peer.IsValid() {
		// The first answer sets the server's TID. A reused socket may still receive a
		// late block of its previous transfer: only block 1 can start one.
		if (op != 3 && op != 5 && op != 6) || (op == 3 && binary.BigEndian.Uint16(pkt[2:]) != 1) {
			return nil, false, nil
		}
		r.peer = from
	}
	switch op {
	case 5:
		msg, _, _ := bytes.Cut(pkt[4:], []byte{0})
		return nil, false, fmt.Errorf("tftp %s: %w %d: %s", r.req.File, errTFTPServer, binary.BigEndian.Uint16(pkt[2:]), msg)
	case 6:
		if r.expect != 1 || r.res.Blocks > 0 {
			return nil, false, nil // a resent OACK after we acknowledged it
		}
		fields := bytes.Split(pkt[2:], []byte{0})
		for i := 0; i+1 < len(fields); i += 2 {
			r.res.Options[string(fields[i])] = string(fields[i+1])
		}
		if v, err := strconv.Atoi(r.res.Options["blksize"]); err == nil {
			r.blksize = v
		}
		if v, err := strconv.Atoi(r.res.Options["windowsize"]); err == nil {
			r.window = v
		}
		if v, err := strconv.ParseInt(r.res.Options["tsize"], 10, 64); err == nil {
			r.tsize = v
		}
		if r.blksize+4 > r.bufSize() {
			return nil, false, fmt.Errorf("tftp %s: server chose blksize %d, more than asked", r.req.File, r.blksize)
		}
		r.tries = 0
		return r.sendAck(0), false, nil
	case 3:
		block := binary.BigEndian.Uint16(pkt[2:])
		if r.req.Drop != nil && r.req.Drop(block) {
			return nil, false, nil
		}
		if block != r.expect {
			r.res.Duplicates++
			// RFC 7440: a block past the one expected means one was lost; say where we
			// are, once, and the server resends from there. With a window of 1, a repeat
			// of the previous block means our ACK was lost.
			ahead := block - r.expect
			if (r.window > 1 && ahead < 0x8000 && !r.gapReported) || (r.window == 1 && block == r.expect-1) {
				r.gapReported = r.window > 1
				r.inWindow = 0
				return r.sendAck(r.expect - 1), false, nil
			}
			return nil, false, nil
		}
		data := pkt[4:]
		if len(data) > r.blksize {
			return nil, false, fmt.Errorf("tftp %s: block %d carries %d bytes, more than the blksize %d", r.req.File, block, len(data), r.blksize)
		}
		if _, err := r.w.Write(data); err != nil {
			return nil, false, fmt.Errorf("tftp %s: block %d: %w", r.req.File, block, err)
		}
		r.res.Bytes += int64(len(data))
		r.res.Blocks++
		r.tries = 0
		r.gapReported = false
		r.expect++
		r.inWindow++
		lastBlock := len(data) < r.blksize
		if r.inWindow >= r.window || lastBlock {
			r.inWindow = 0
			reply = r.sendAck(block)
		}
		if lastBlock && r.tsize >= 0 && r.res.Bytes != r.tsize {
			return reply, true, fmt.Errorf("tftp %s: %d bytes, the server's tsize said %d", r.req.File, r.res.Bytes, r.tsize)
		}
		return reply, lastBlock, nil
	}
	return nil, false, nil
}
