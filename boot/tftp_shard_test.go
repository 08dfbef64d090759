package boot

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// The transfers share a few server ports and are told apart by the client's address and
// port. These tests are the cases that distinction must get right.

// TestTFTP_TheNextReadFromTheSamePortIsServedAtOnce: a firmware reads its next file from
// the port it used for the last one, and its last ACK may reach the server after the new
// request (or never). The new request must get its own OACK, not be taken for a repeat.
func TestTFTP_TheNextReadFromTheSamePortIsServedAtOnce(t *testing.T) {
	// A long timeout: had the request been ignored, nothing would answer it in the test.
	lab := newTFTPLab(t, TFTPConfig{Timeout: 30 * time.Second})
	conn := lab.udpIn(t)
	server := net.UDPAddrFromAddrPort(tftpServerPort)
	for round := range 3 {
		before := lab.srv.Stats()
		if _, err := conn.WriteTo(rrq("undionly.kpxe", "octet", "blksize", "1468", "windowsize", "8"), server); err != nil {
			t.Fatal(err)
		}
		_, peer := readOACK(t, conn)
		// Every block but with no ACK for the last window: the client has moved on.
		ack := func(block uint16) {
			if _, err := conn.WriteTo([]byte{0, opACK, byte(block >> 8), byte(block)}, peer); err != nil {
				t.Fatal(err)
			}
		}
		ack(0)
		buf := make([]byte, 2048)
		var block uint16
		for {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("round %d: waiting for block %d: %v", round, block+1, err)
			}
			if binary.BigEndian.Uint16(buf) != opDATA || binary.BigEndian.Uint16(buf[2:]) != block+1 {
				continue
			}
			block++
			if n < 4+1468 {
				break // the last block: no ACK for it
			}
			if block%8 == 0 {
				ack(block)
			}
		}
		after := lab.srv.Stats()
		if round > 0 && after.Served != before.Served+1 {
			t.Errorf("round %d: served %d→%d: the previous transfer, its last block sent, should count as served",
				round, before.Served, after.Served)
		}
	}
	if st := lab.srv.Stats(); st.Failed != 0 || st.Repeats != 0 {
		t.Errorf("failed %d, repeats %d; want none", st.Failed, st.Repeats)
	}
}

// TestTFTP_ARepeatedRequestStartsAtMostOneTransferPerShard: a client that asks again
// before its answer arrives gets a transfer on another server port, as with a socket per
// transfer (it takes the first answer and its ERROR or silence ends the others), but one
// port that keeps asking holds no more transfers than there are shards: the rest of its
// requests are ignored and counted.
func TestTFTP_ARepeatedRequestStartsAtMostOneTransferPerShard(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Shards: 4})
	conn := lab.udpIn(t)
	server := net.UDPAddrFromAddrPort(tftpServerPort)
	req := rrq("undionly.kpxe", "octet", "tsize", "0")
	for range 6 {
		if _, err := conn.WriteTo(req, server); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the repeats to be counted", func() bool { return lab.srv.Stats().Repeats == 2 })
	if st := lab.srv.Stats(); st.Active != 4 {
		t.Errorf("%d transfers in flight, want 4 (one per shard)", st.Active)
	}
	ports := map[int]bool{}
	for range 4 {
		_, peer := readOACK(t, conn)
		ports[peer.Port] = true
		abortTransfer(conn, peer)
	}
	if len(ports) != 4 {
		t.Errorf("answers from %d server ports, want 4 distinct", len(ports))
	}
	waitFor(t, "the transfers to end", func() bool { return lab.srv.Stats().Active == 0 })
}

// TestTFTP_AnotherAddressCannotSteerATransfer: datagrams to a transfer's port from an
// address that is not its client's (an ACK ahead, an ERROR) are dropped and counted, and
// the client's transfer goes on to the end.
func TestTFTP_AnotherAddressCannotSteerATransfer(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{})
	conn := lab.udpIn(t)
	attacker := lab.udpInAt(t, net.IPv4(127, 0, 0, 2))
	if _, err := conn.WriteTo(rrq("undionly.kpxe", "octet", "blksize", "1468"), net.UDPAddrFromAddrPort(tftpServerPort)); err != nil {
		t.Fatal(err)
	}
	_, peer := readOACK(t, conn)
	before := lab.srv.Stats()
	for _, p := range [][]byte{{0, opACK, 0, 0}, {0, opACK, 0, 40}, {0, opERROR, 0, 0, 'x', 0}} {
		if _, err := attacker.WriteTo(p, peer); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the foreign datagrams to be counted", func() bool { return lab.srv.Stats().Strays == before.Strays+3 })
	// The attacker gets nothing back.
	attacker.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := attacker.ReadFrom(make([]byte, 2048)); err == nil {
		t.Errorf("the foreign address got %d bytes back", n)
	}
	// The client, from its own address, still gets every block.
	if _, err := conn.WriteTo([]byte{0, opACK, 0, 0}, peer); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	var got int
	for block := uint16(1); ; block++ {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("block %d: %v", block, err)
		}
		if binary.BigEndian.Uint16(buf) != opDATA || binary.BigEndian.Uint16(buf[2:]) != block {
			t.Fatalf("got %q, want DATA block %d", buf[:min(n, 8)], block)
		}
		got += n - 4
		if _, err := conn.WriteTo([]byte{0, opACK, byte(block >> 8), byte(block)}, peer); err != nil {
			t.Fatal(err)
		}
		if n < 4+1468 {
			break
		}
	}
	if want := len(fileBytes(t, lab, "undionly.kpxe")); got != want {
		t.Errorf("the client got %d bytes, want %d", got, want)
	}
	waitFor(t, "the transfer to be served", func() bool { return lab.srv.Stats().Served == before.Served+1 })
}

// TestTFTP_AClosedClientPortEndsItsTransferAtOnce: the shard sockets are unconnected,
// yet a client that closed its port is noticed by the ICMP port unreachable its next
// block draws (IP_RECVERR), not after the whole backoff: with these settings the
// retries alone would hold the transfer for about a minute and a half.
func TestTFTP_AClosedClientPortEndsItsTransferAtOnce(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 200 * time.Millisecond, Retries: 10})
	before := lab.srv.Stats()
	conn := lab.udpIn(t)
	startWindowedRead(t, conn)
	conn.Close()
	waitFor(t, "the transfer to be freed", func() bool { return lab.srv.Stats().Active == 0 })
	after := lab.srv.Stats()
	if after.Failed != before.Failed+1 {
		t.Errorf("failed %d→%d, want one more", before.Failed, after.Failed)
	}
	if after.Retransmits-before.Retransmits > 8 {
		t.Errorf("%d blocks resent to a closed port, want the one window that drew the ICMP", after.Retransmits-before.Retransmits)
	}
}
