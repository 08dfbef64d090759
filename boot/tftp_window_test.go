package boot

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/loadgen"
)

var tftpServerPort = netip.MustParseAddrPort("127.0.0.1:69")

// lgGet reads file with the RFC 7440 client of boot/loadgen from inside the lab.
func lgGet(t testing.TB, lab *tftpLab, req loadgen.TFTPRequest) ([]byte, loadgen.TFTPResult) {
	t.Helper()
	req.Server = tftpServerPort
	conn := lab.udpIn(t)
	var buf bytes.Buffer
	res, err := loadgen.TFTPGet(context.Background(), conn, req, &buf)
	if err != nil {
		t.Fatalf("get %s (blksize %d, windowsize %d): %v (server stats %+v)", req.File, req.BlockSize, req.WindowSize, err, lab.srv.Stats())
	}
	return buf.Bytes(), res
}

func fileBytes(t testing.TB, lab *tftpLab, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lab.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTFTP_WindowsizeIsNegotiatedAndEveryFileArrivesWhole(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{MaxWindowSize: 32})
	// These clients lose nothing, so any retransmission is the server's mistake.
	tests := []struct {
		blksize, window int
		wantWindow      string // "" when the client did not ask: no windowsize in the OACK
	}{
		{512, 0, ""},
		{1468, 1, "1"},
		{1468, 4, "4"}, // EDK2's default
		{1468, 16, "16"},
		{512, 32, "32"},
		{1468, 200, "32"}, // capped at MaxWindowSize
		{65464, 8, "1"},   // loopback's MTU allows the largest block, but not 8 in one burst
		{8192, 16, "8"},   // a window carries at most 64 KiB
		{8, 64, "32"},     // 131,072 blocks of ipxe.efi: the block number wraps twice
	}
	for _, tt := range tests {
		for file := range tftpFiles {
			t.Run(strconv.Itoa(tt.blksize)+"x"+strconv.Itoa(tt.window)+"/"+file, func(t *testing.T) {
				before := lab.srv.Stats().WindowSize
				got, res := lgGet(t, lab, loadgen.TFTPRequest{File: file, BlockSize: tt.blksize, WindowSize: tt.window})
				if !bytes.Equal(got, fileBytes(t, lab, file)) {
					t.Fatalf("got %d bytes, want the %d bytes of the file", len(got), tftpFiles[file])
				}
				if res.Options["windowsize"] != tt.wantWindow {
					t.Errorf("OACK windowsize %q, want %q (OACK %v)", res.Options["windowsize"], tt.wantWindow, res.Options)
				}
				if res.Options["blksize"] != strconv.Itoa(tt.blksize) || res.Options["tsize"] != strconv.Itoa(tftpFiles[file]) {
					t.Errorf("OACK %v, want blksize %d and tsize %d", res.Options, tt.blksize, tftpFiles[file])
				}
				// One ACK per window (and one for the OACK), not one per block.
				w, _ := strconv.Atoi(tt.wantWindow)
				w = max(w, 1)
				if wantAcks := 1 + (res.Blocks+w-1)/w; res.Acks != wantAcks || res.Duplicates != 0 {
					t.Errorf("%d ACKs and %d duplicates for %d blocks, want %d ACKs and none", res.Acks, res.Duplicates, res.Blocks, wantAcks)
				}
				waitFor(t, "the transfer to end", func() bool { return lab.srv.Stats().Active == 0 })
				after := lab.srv.Stats().WindowSize
				if after.Count != before.Count+1 || after.Sum != before.Sum+uint64(w) {
					t.Errorf("windowsize histogram count %d→%d sum %d→%d, want one sample of %d", before.Count, after.Count, before.Sum, after.Sum, w)
				}
			})
		}
	}
	if st := lab.srv.Stats(); st.Failed != 0 || st.Retransmits != 0 || st.Active != 0 {
		t.Errorf("stats %+v: want no failure, no retransmission, nothing in flight", st)
	}
}

// TestTFTP_LostBlocksAreResentFromTheGap drops DATA blocks on purpose in the client: in a
// window (the client reports the gap, RFC 7440) and with windowsize 1 (the server's timer
// resends). The file must arrive whole, with the resends counted.
func TestTFTP_LostBlocksAreResentFromTheGap(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 100 * time.Millisecond, Retries: 4})
	tests := []struct {
		name   string
		window int
		lose   map[uint16]int // block → how many of its copies are lost
	}{
		{"window 1, a block, a block twice, the last block", 1, map[uint16]int{1: 1, 7: 2, 715: 1}},
		{"window 8, inside a window", 8, map[uint16]int{3: 1, 17: 2, 100: 1}},
		{"window 8, a window's first and last", 8, map[uint16]int{9: 1, 16: 1}},
		{"window 16, the last block", 16, map[uint16]int{715: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := lab.srv.Stats()
			lose := map[uint16]int{}
			for k, v := range tt.lose {
				lose[k] = v
			}
			got, _ := lgGet(t, lab, loadgen.TFTPRequest{File: "ipxe.efi", BlockSize: 1468, WindowSize: tt.window,
				Timeout: 300 * time.Millisecond, Retries: 10,
				Drop: func(b uint16) bool {
					if lose[b] > 0 {
						lose[b]--
						return true
					}
					return false
				}})
			if !bytes.Equal(got, fileBytes(t, lab, "ipxe.efi")) {
				t.Fatalf("got %d bytes, want the file's %d", len(got), 1<<20)
			}
			// The server counts when its transfer ends, just after our last ACK.
			waitFor(t, "the transfer to end", func() bool { return lab.srv.Stats().Active == 0 })
			after := lab.srv.Stats()
			if after.Retransmits == before.Retransmits {
				t.Error("no retransmission counted")
			}
			if after.Served != before.Served+1 || after.Failed != before.Failed {
				t.Errorf("served %d→%d failed %d→%d, want one more served", before.Served, after.Served, before.Failed, after.Failed)
			}
		})
	}
}

// TestTFTP_DuplicateAcksDoNotDoubleTheBlocks is the Sorcerer's Apprentice check (RFC 1123
// 4.2.3.1): a client that sends every ACK twice must still get each block once.
func TestTFTP_DuplicateAcksDoNotDoubleTheBlocks(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 5 * time.Second})
	conn := lab.udpIn(t)
	if _, err := conn.WriteTo(rrq("snponly.efi", "octet"), net.UDPAddrFromAddrPort(tftpServerPort)); err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]int{}
	buf := make([]byte, 600)
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, peer, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after blocks %v: %v", len(seen), err)
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != opDATA {
			t.Fatalf("got %q, want DATA", buf[:n])
		}
		block := binary.BigEndian.Uint16(buf[2:])
		seen[block]++
		if seen[block] > 1 {
			t.Fatalf("block %d sent %d times", block, seen[block])
		}
		ack := []byte{0, opACK, buf[2], buf[3]}
		for range 2 {
			if _, err := conn.WriteTo(ack, peer); err != nil {
				t.Fatal(err)
			}
		}
		if n < 516 {
			break
		}
	}
	// The last ACK's twin reaches a transfer that has ended; wait for the server to have
	// settled before checking nothing else came.
	waitFor(t, "the transfer to end", func() bool { return lab.srv.Stats().Active == 0 })
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		t.Errorf("an extra packet after the last block: %q", buf[:min(n, 8)])
	}
	if st := lab.srv.Stats(); st.Retransmits != 0 {
		t.Errorf("%d retransmissions for duplicate ACKs", st.Retransmits)
	}
}

// TestTFTP_AClientThatDisappearsFreesItsTransfer: a client that closes its socket (the
// kernel answers with port unreachable) and one that goes silent (its packets are simply
// lost) both leave no transfer behind.
func TestTFTP_AClientThatDisappearsFreesItsTransfer(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 50 * time.Millisecond, Retries: 3})
	for _, closeSocket := range []bool{true, false} {
		t.Run("close="+strconv.FormatBool(closeSocket), func(t *testing.T) {
			before := lab.srv.Stats()
			conn := lab.udpIn(t)
			startWindowedRead(t, conn)
			waitFor(t, "the transfer to be in flight", func() bool { return lab.srv.Stats().Active == 1 })
			if closeSocket {
				conn.Close()
			}
			waitFor(t, "the transfer to be freed", func() bool { return lab.srv.Stats().Active == 0 })
			after := lab.srv.Stats()
			if after.Failed != before.Failed+1 || after.Served != before.Served {
				t.Errorf("failed %d→%d served %d→%d, want one more failed", before.Failed, after.Failed, before.Served, after.Served)
			}
		})
	}
	// And the server still serves.
	if got, _ := lgGet(t, lab, loadgen.TFTPRequest{File: "undionly.kpxe", BlockSize: 1468, WindowSize: 4}); !bytes.Equal(got, fileBytes(t, lab, "undionly.kpxe")) {
		t.Error("a later transfer did not get the file")
	}
}

// TestTFTP_AChangedFileIsServedFresh: the shared copy is refreshed when the file changes.
func TestTFTP_AChangedFileIsServedFresh(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{})
	first, _ := lgGet(t, lab, loadgen.TFTPRequest{File: "snponly.efi", BlockSize: 1468})
	if !bytes.Equal(first, fileBytes(t, lab, "snponly.efi")) {
		t.Fatal("first read differs from the file")
	}
	next := bytes.Repeat([]byte("new build "), 3000)
	if err := os.WriteFile(filepath.Join(lab.dir, "snponly.efi"), next, 0o644); err != nil {
		t.Fatal(err)
	}
	got, res := lgGet(t, lab, loadgen.TFTPRequest{File: "snponly.efi", BlockSize: 1468})
	if !bytes.Equal(got, next) || res.Options["tsize"] != strconv.Itoa(len(next)) {
		t.Errorf("after the change: %d bytes, tsize %s; want the new %d bytes", len(got), res.Options["tsize"], len(next))
	}
}

// startWindowedRead starts a read of ipxe.efi with windowsize 4 from conn and takes the
// OACK and the first window's first block: a transfer in flight. Returns the server's
// transfer address.
func startWindowedRead(t testing.TB, conn *net.UDPConn) *net.UDPAddr {
	t.Helper()
	if _, err := conn.WriteTo(rrq("ipxe.efi", "octet", "windowsize", "4"), net.UDPAddrFromAddrPort(tftpServerPort)); err != nil {
		t.Fatal(err)
	}
	_, peer := readOACK(t, conn)
	if _, err := conn.WriteTo([]byte{0, opACK, 0, 0}, peer); err != nil {
		t.Fatal(err)
	}
	if op, _, _ := readAnswer(t, conn); op != opDATA {
		t.Fatalf("opcode %d, want DATA", op)
	}
	return peer
}

// waitFor polls cond until it holds, failing the test at a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
