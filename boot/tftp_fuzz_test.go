package boot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/bootyard/bootyard/ipxe"
)

// FuzzTFTPRequest sends the fuzzed bytes as one datagram to the real server's request
// port, in a namespace, the way a request arrives. It checks the server as a whole
// (FuzzTFTPOptions checks the option parser and negotiation on their own):
//
//   - a read request for a name outside the allow-list is never answered with DATA/OACK,
//   - a write request is never acknowledged,
//   - a packet that is not a request gets no answer at all,
//   - and after any packet, the server still serves a well-formed request.
func FuzzTFTPRequest(f *testing.F) {
	for _, seed := range [][]byte{
		rrq("undionly.kpxe", "octet"),
		rrq("ipxe.efi", "octet", "tsize", "0", "blksize", "1468"),
		rrq("ipxe.efi", "netascii", "blksize", "65464"),
		rrq("../secret", "octet"),
		rrq("/etc/passwd", "octet"),
		rrq("snponly.efi", "octet", "blksize", "abc", "tsize", "-1"),
		rrq("ipxe.efi", "octet", "blksize", "1468", "windowsize", "4", "tsize", "0"),
		rrq("ipxe.efi", "octet", "windowsize", "65535", "blksize", "8", "timeout", "1"),
		rrq("undionly.kpxe", "octet", "windowsize", "0", "timeout", "256"),
		append([]byte{0, 2}, rrq("ipxe.efi", "octet")[2:]...),
		{0, 1},
		{0, 4, 0, 1},
		{0, 6, 'b', 'l', 'k', 's', 'i', 'z', 'e', 0, '9', 0},
	} {
		f.Add(seed)
	}
	lab := newTFTPLab(f, TFTPConfig{Timeout: 100 * time.Millisecond, Retries: 1})
	probeSize := tftpFiles["snponly.efi"]
	var iteration uint32
	f.Fuzz(func(t *testing.T, packet []byte) {
		// Each input gets its own client address: a reused port on a reused address would
		// receive late packets of an earlier input's transfers and blame this one.
		iteration++
		conn := lab.udpInAt(t, net.IPv4(127, 1, byte(iteration>>8), byte(iteration)))
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 69}
		if _, err := conn.WriteTo(packet, server); err != nil {
			t.Skipf("datagram not sendable: %v", err)
		}
		exp := expectAnswer(packet, lab.bins)
		var fuzzPeer *net.UDPAddr
		if exp != answerNone {
			op, peer, err := readPacket(conn, 5*time.Second)
			if err != nil {
				t.Fatalf("no answer to a request (%v)", err)
			}
			fuzzPeer = peer
			switch {
			case exp == answerErrorOnly && op != 5:
				t.Fatalf("answered opcode %d, want only ERROR (5), to %q", op, packet)
			case exp == answerAny && op != 3 && op != 5 && op != 6:
				t.Fatalf("answered opcode %d to a read request", op)
			}
			abortTransfer(conn, peer)
		}
		// The probe: the next answer from a new transfer must be the probe's own OACK.
		if _, err := conn.WriteTo(rrq("snponly.efi", "octet", "tsize", "0"), server); err != nil {
			t.Fatal(err)
		}
		for {
			buf := make([]byte, 2048)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, peer, err := conn.ReadFromUDP(buf)
			if err != nil {
				sockets, _ := lab.ns.Exec(context.Background(), "sh", "-c", "ss -uan | wc -l")
				t.Fatalf("server stopped answering after %q: %v (stats %+v, %s UDP sockets in the namespace)",
					packet, err, lab.srv.Stats(), bytes.TrimSpace(sockets))
			}
			want := rrqOACK("tsize", itoa(probeSize))
			if !bytes.Equal(buf[:n], want) {
				if fuzzPeer != nil && peer.Port == fuzzPeer.Port {
					// A late packet of the fuzzed transfer. (Only by content can the probe's
					// answer be told apart: its socket may reuse the closed one's port.)
					continue
				}
				t.Fatalf("after %q the probe got %q, want its OACK %q", packet, buf[:n], want)
			}
			abortTransfer(conn, peer)
			return
		}
	})
}

type answer int

const (
	answerNone      answer = iota // not a request: nothing comes back
	answerErrorOnly               // a write, or a read of a name not served: ERROR only
	answerAny                     // a read of a served name: DATA, OACK or ERROR
)

// expectAnswer is how a request is framed (RFC 1350, RFC 2347): at most 516 bytes are
// read, an opcode and at least four bytes are needed, and the rest must hold a
// NUL-terminated name and a NUL-terminated mode.
func expectAnswer(p []byte, bins *ipxe.Binaries) answer {
	if len(p) > 516 {
		p = p[:516]
	}
	if len(p) < 4 {
		return answerNone
	}
	op := binary.BigEndian.Uint16(p)
	if op != 1 && op != 2 {
		return answerNone
	}
	fields := bytes.Split(p[2:], []byte{0})
	if len(fields) < 3 { // name, mode, and what follows the mode's NUL
		return answerNone
	}
	if op == 2 {
		return answerErrorOnly
	}
	name := string(fields[0])
	if _, ok := bins.Lookup(name); ok && ipxe.CheckName(name) == nil {
		return answerAny
	}
	return answerErrorOnly
}

func readPacket(conn *net.UDPConn, wait time.Duration) (uint16, *net.UDPAddr, error) {
	buf := make([]byte, 65536)
	conn.SetReadDeadline(time.Now().Add(wait))
	n, peer, err := conn.ReadFromUDP(buf)
	if err != nil {
		return 0, nil, err
	}
	if n < 2 {
		return 0, peer, errors.New("runt answer")
	}
	return binary.BigEndian.Uint16(buf), peer, nil
}

// rrqOACK builds the OACK the server sends for the given options.
func rrqOACK(kv ...string) []byte {
	b := []byte{0, 6}
	for _, f := range kv {
		b = append(append(b, f...), 0)
	}
	return b
}

func itoa(n int) string { return string(strconvAppend(nil, n)) }

func strconvAppend(b []byte, n int) []byte {
	if n >= 10 {
		b = strconvAppend(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// FuzzTFTPOptions checks the request parser and the option negotiation on their own,
// with any bytes: they never panic, the negotiated blksize and windowsize stay inside
// RFC 2348 / RFC 7440 bounds and our caps, a window never carries more than
// maxWindowBytes, and the OACK names only options the client asked for, each once.
func FuzzTFTPOptions(f *testing.F) {
	for _, seed := range [][]byte{
		rrq("ipxe.efi", "octet", "blksize", "1468", "windowsize", "4", "tsize", "0"),
		rrq("ipxe.efi", "octet", "windowsize", "0"),
		rrq("ipxe.efi", "octet", "windowsize", "65536"),
		rrq("ipxe.efi", "octet", "windowsize", "-1", "blksize", "7"),
		rrq("ipxe.efi", "octet", "WindowSize", "16", "BLKSIZE", "65464"),
		rrq("ipxe.efi", "octet", "blksize", "65465", "timeout", "0"),
		rrq("ipxe.efi", "octet", "timeout", "255", "timeout", "1"),
		rrq("ipxe.efi", "octet", "blksize", "1468", "blksize", "8"),
		rrq("ipxe.efi", "netascii", "windowsize", "+4", "blksize", " 1468"),
		rrq("ipxe.efi", "octet", "windowsize", "99999999999999999999"),
		rrq("ipxe.efi", "octet", "windowsize"),
		{0, 1, 'a', 0, 'o', 0, 'w', 'i', 'n', 'd', 'o', 'w', 's', 'i', 'z', 'e', 0, '8'},
	} {
		f.Add(seed, uint16(1468), uint16(64))
	}
	f.Fuzz(func(t *testing.T, p []byte, capBlk, capWin uint16) {
		req, err := parseRequest(p)
		if err != nil {
			return
		}
		maxBlk := max(minBlockSize, min(maxBlockSize, int(capBlk)))
		maxWin := max(1, int(capWin))
		o := negotiate(req, 1<<20, maxBlk, maxWin, time.Second, 3)
		if o.blksize < minBlockSize || o.blksize > maxBlk {
			t.Fatalf("blksize %d outside %d..%d", o.blksize, minBlockSize, maxBlk)
		}
		if o.window < 1 || o.window > maxWin || (o.window > 1 && o.window*o.blksize > maxWindowBytes) {
			t.Fatalf("windowsize %d (blksize %d) outside 1..%d or over %d bytes", o.window, o.blksize, maxWin, maxWindowBytes)
		}
		if o.timeout < time.Second || o.timeout > maxTimeoutSec*time.Second {
			t.Fatalf("timeout %s", o.timeout)
		}
		if o.oack == nil {
			return
		}
		if binary.BigEndian.Uint16(o.oack) != opOACK || o.oack[len(o.oack)-1] != 0 {
			t.Fatalf("OACK %q is not framed", o.oack)
		}
		fields := bytes.Split(o.oack[2:len(o.oack)-1], []byte{0})
		if len(fields)%2 != 0 {
			t.Fatalf("OACK %q has an odd number of fields", o.oack)
		}
		asked := map[string]bool{"blksize": req.blksize > 0, "windowsize": req.window > 0, "timeout": req.timeout > 0, "tsize": req.tsize}
		seen := map[string]bool{}
		for i := 0; i < len(fields); i += 2 {
			name := string(fields[i])
			if !asked[name] || seen[name] {
				t.Fatalf("OACK %q names %q, which was not asked or twice", o.oack, name)
			}
			seen[name] = true
		}
	})
}
