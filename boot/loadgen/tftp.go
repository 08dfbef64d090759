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
}

var errTFTPServer = errors.New("tftp server error")

// TFTPGet reads req.File into w through conn, an unconnected UDP socket owned by this
// call. The server's transfer port (TID) is taken from its first answer; packets from
// anywhere else are ignored.
func TFTPGet(ctx context.Context, conn *net.UDPConn, req TFTPRequest, w io.Writer) (TFTPResult, error) {
	if req.Timeout == 0 {
		req.Timeout = time.Second
	}
	if req.Retries == 0 {
		req.Retries = 5
	}
	res := TFTPResult{Options: map[string]string{}}
	rrq := []byte{0, 1}
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

	blksize, window := 512, 1
	buf := make([]byte, max(req.BlockSize, 512)+4+64)
	var peer netip.AddrPort // the server's TID once it answered
	last := rrq             // what a timeout re-sends: the request, then the last ACK
	lastTo := req.Server
	expect := uint16(1) // next block wanted
	inWindow := 0       // blocks received since the last ACK
	gapReported := false
	tries := 0
	ack := func(block uint16) error {
		last = []byte{0, 4, byte(block >> 8), byte(block)}
		lastTo = peer
		res.Acks++
		_, err := conn.WriteToUDPAddrPort(last, peer)
		return err
	}
	if _, err := conn.WriteToUDPAddrPort(rrq, req.Server); err != nil {
		return res, fmt.Errorf("tftp %s: send request: %w", req.File, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		conn.SetReadDeadline(time.Now().Add(req.Timeout))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return res, fmt.Errorf("tftp %s: %w", req.File, err)
			}
			tries++
			if tries > req.Retries {
				return res, fmt.Errorf("tftp %s: no answer after %d tries (block %d)", req.File, tries, expect)
			}
			inWindow = 0
			if peer.IsValid() && res.Blocks > 0 {
				// RFC 7440: on a timeout, acknowledge the last block received in order,
				// so the server resends from the first one missing.
				if err := ack(expect - 1); err != nil {
					return res, err
				}
				continue
			}
			if _, err := conn.WriteToUDPAddrPort(last, lastTo); err != nil {
				return res, fmt.Errorf("tftp %s: %w", req.File, err)
			}
			continue
		}
		if n < 4 || (peer.IsValid() && from != peer) {
			continue
		}
		op := binary.BigEndian.Uint16(buf)
		if !peer.IsValid() {
			// The first answer sets the server's TID. A reused socket may still receive
			// a late block of its previous transfer: only block 1 can start one.
			if (op != 3 && op != 5 && op != 6) || (op == 3 && binary.BigEndian.Uint16(buf[2:]) != 1) {
				continue
			}
			peer = from
		}
		switch op {
		case 5:
			msg, _, _ := bytes.Cut(buf[4:n], []byte{0})
			return res, fmt.Errorf("tftp %s: %w %d: %s", req.File, errTFTPServer, binary.BigEndian.Uint16(buf[2:]), msg)
		case 6:
			if expect != 1 || res.Blocks > 0 {
				continue // a resent OACK after we acknowledged it
			}
			fields := bytes.Split(buf[2:n], []byte{0})
			for i := 0; i+1 < len(fields); i += 2 {
				res.Options[string(fields[i])] = string(fields[i+1])
			}
			if v, err := strconv.Atoi(res.Options["blksize"]); err == nil {
				blksize = v
			}
			if v, err := strconv.Atoi(res.Options["windowsize"]); err == nil {
				window = v
			}
			if blksize+4 > len(buf) {
				return res, fmt.Errorf("tftp %s: server chose blksize %d, more than asked", req.File, blksize)
			}
			tries = 0
			if err := ack(0); err != nil {
				return res, err
			}
		case 3:
			block := binary.BigEndian.Uint16(buf[2:])
			if req.Drop != nil && req.Drop(block) {
				continue
			}
			if block != expect {
				res.Duplicates++
				// RFC 7440: a block past the one expected means one was lost; say
				// where we are, once, and the server resends from there. With a
				// window of 1, a repeat of the previous block means our ACK was lost.
				ahead := block - expect
				if (window > 1 && ahead < 0x8000 && !gapReported) || (window == 1 && block == expect-1) {
					gapReported = window > 1
					inWindow = 0
					if err := ack(expect - 1); err != nil {
						return res, err
					}
				}
				continue
			}
			data := buf[4:n]
			if _, err := w.Write(data); err != nil {
				return res, err
			}
			res.Bytes += int64(len(data))
			res.Blocks++
			tries = 0
			gapReported = false
			expect++
			inWindow++
			lastBlock := len(data) < blksize
			if inWindow >= window || lastBlock {
				inWindow = 0
				if err := ack(block); err != nil {
					return res, err
				}
			}
			if lastBlock {
				return res, nil
			}
		}
	}
}
