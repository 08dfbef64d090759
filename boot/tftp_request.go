package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"
)

// TFTP opcodes (RFC 1350, RFC 2347 for OACK).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// maxRequestLen is the longest request read: RFC 2347 keeps a request, options included,
// within 512 octets after the opcode. Longer datagrams are cut there, as pin/tftp did.
const maxRequestLen = 516

// Limits of the options we negotiate.
const (
	minBlockSize  = 8     // RFC 2348
	maxBlockSize  = 65464 // RFC 2348: the largest DATA that fits one IPv4 UDP datagram
	maxWindowSize = 65535 // RFC 7440
	maxTimeoutSec = 255   // RFC 2349

	maxWindowBytes = 64 << 10 // the most file bytes one window may carry
)

// tftpRequest is a parsed RRQ or WRQ: the file name, whether netascii was asked for, and
// the options the client proposed that we understand and accept (zero: not asked).
type tftpRequest struct {
	op       uint16
	filename string
	netascii bool
	blksize  int           // 0: not asked (512)
	window   int           // 0: not asked (1)
	timeout  time.Duration // 0: not asked
	tsize    bool          // the client asked for the transfer size
}

var errMalformed = errors.New("malformed request")

// parseRequest decodes a request datagram. Anything that is not a request with a file name
// and a mode is errMalformed. Option values that are out of range or not numbers are
// ignored, as RFC 2347 lets a server do: the transfer then uses the default.
func parseRequest(p []byte) (tftpRequest, error) {
	if len(p) > maxRequestLen {
		p = p[:maxRequestLen]
	}
	if len(p) < 4 {
		return tftpRequest{}, errMalformed
	}
	r := tftpRequest{op: binary.BigEndian.Uint16(p)}
	if r.op != opRRQ && r.op != opWRQ {
		return tftpRequest{}, errMalformed
	}
	fields := bytes.Split(p[2:], []byte{0})
	// A request ends with a NUL, so the last field is empty (or a cut-off fragment,
	// which is dropped); name and mode must both be there.
	fields = fields[:len(fields)-1]
	if len(fields) < 2 {
		return tftpRequest{}, errMalformed
	}
	r.filename = string(fields[0])
	r.netascii = strings.EqualFold(string(fields[1]), "netascii")
	for i := 2; i+1 < len(fields); i += 2 {
		name, value := strings.ToLower(string(fields[i])), string(fields[i+1])
		n, err := strconv.Atoi(value)
		switch name {
		case "blksize":
			if err == nil && n >= minBlockSize && n <= maxBlockSize {
				r.blksize = n
			}
		case "windowsize":
			if err == nil && n >= 1 && n <= maxWindowSize {
				r.window = n
			}
		case "timeout":
			if err == nil && n >= 1 && n <= maxTimeoutSec {
				r.timeout = time.Duration(n) * time.Second
			}
		case "tsize":
			// In a read request the client sends 0; any value asks for the size.
			r.tsize = true
		}
	}
	return r, nil
}

// tftpOptions is what a transfer runs with after negotiation.
type tftpOptions struct {
	blksize int
	window  int
	timeout time.Duration // the first wait for an ACK; doubled on each retransmission
	retries int           // retransmissions of one window before the client counts as gone
	oack    []byte        // the OACK to send first; nil when the client asked for nothing we accept
}

// negotiate settles the options of a read request: blksize capped at maxBlk (the path MTU
// or the configured cap), windowsize at maxWin, the client's timeout taken as asked, and
// tsize answered with size. Only options the client asked for appear in the OACK, so a
// client that asked for none gets DATA at once (RFC 2347).
func negotiate(r tftpRequest, size int64, maxBlk, maxWin int, timeout time.Duration, retries int) tftpOptions {
	o := tftpOptions{blksize: 512, window: 1, timeout: timeout, retries: retries}
	var oack []byte
	add := func(name string, v int64) {
		if oack == nil {
			oack = []byte{0, opOACK}
		}
		oack = append(append(oack, name...), 0)
		oack = append(strconv.AppendInt(oack, v, 10), 0)
	}
	if r.blksize > 0 {
		o.blksize = min(r.blksize, maxBlk)
		add("blksize", int64(o.blksize))
	}
	if r.window > 0 {
		// A window is sent as one burst: beyond maxWindowBytes it would overflow a
		// default socket receive buffer (208 KiB of kernel memory holds far fewer
		// datagrams than bytes) and lose its tail every time.
		o.window = max(1, min(r.window, maxWin, maxWindowBytes/o.blksize))
		add("windowsize", int64(o.window))
	}
	if r.timeout > 0 {
		o.timeout = r.timeout
		add("timeout", int64(r.timeout/time.Second))
	}
	if r.tsize {
		add("tsize", size)
	}
	o.oack = oack
	return o
}

// errorPacket builds an ERROR packet (RFC 1350): code, then a NUL-terminated message.
func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	return append(append(b, msg...), 0)
}

// TFTP error codes used here (RFC 1350).
const (
	errCodeUndefined = 0
	errCodeNotFound  = 1
	errCodeAccess    = 2
	errCodeIllegalOp = 4
)
