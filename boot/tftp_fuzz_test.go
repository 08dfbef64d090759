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
