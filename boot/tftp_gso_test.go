package boot

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/bootyard/bootyard/boot/loadgen"
)

func TestTFTP_GSOSendsARunOfOneWindowsFullBlocksAsOneDatagram(t *testing.T) {
	a, b := new(sockaddr), new(sockaddr)
	block := func(to *sockaddr, size int) outPacket {
		return outPacket{to: to, hdrLen: 4, payload: make([]byte, size)}
	}
	repeat := func(n int, p outPacket) []outPacket {
		out := make([]outPacket, n)
		for i := range out {
			out[i] = p
		}
		return out
	}
	tests := []struct {
		name string
		pkts []outPacket
		want int
	}{
		{"an OACK goes alone", []outPacket{{to: a, payload: []byte("oack")}, block(a, 1468)}, 1},
		{"a window of full blocks", repeat(16, block(a, 1468)), 16},
		{"the file's short last block ends the run", append(repeat(3, block(a, 1468)), block(a, 100), block(a, 1468)), 4},
		{"an empty last block (a file of whole blocks) ends it too", append(repeat(3, block(a, 512)), block(a, 0)), 4},
		{"a longer block cannot follow", []outPacket{block(a, 512), block(a, 1468)}, 1},
		{"another client's window is its own run", append(repeat(4, block(a, 1468)), repeat(4, block(b, 1468))...), 4},
		{"at most the kernel's 64 segments", repeat(100, block(a, 8)), gsoMaxSegments},
		{"at most one datagram's 64 KiB", repeat(8, block(a, 8192)), gsoMaxBytes / 8196},
		{"a lone block", []outPacket{block(a, 1468)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gsoRun(tt.pkts); got != tt.want {
				t.Errorf("gsoRun = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTFTP_GSOIsUsedWhereTheKernelKnowsUDPSegment(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc, err := newBatchConn(conn)
	if err != nil {
		t.Fatal(err)
	}
	// Linux 4.18 and later: every kernel this project supports.
	if !bc.gso.Load() {
		t.Errorf("GSO off on a kernel with UDP_SEGMENT")
	}
}

// TestTFTP_AWindowPastThePathMTUIsSentBlockByBlock: the kernel refuses a GSO datagram
// whose segments exceed the path MTU (EINVAL). The blksize is chosen within the path MTU,
// but the MTU can shrink during a transfer: here the link's MTU drops to 1,500 after the
// first block of 8 KiB ones. The later windows must go out one block at a time (IP then
// fragments each) and the file arrive whole.
func TestTFTP_AWindowPastThePathMTUIsSentBlockByBlock(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{MaxWindowSize: 16})
	var shrink sync.Once
	req := loadgen.TFTPRequest{File: "ipxe.efi", BlockSize: 8192, WindowSize: 4, Drop: func(uint16) bool {
		shrink.Do(func() { lab.ns.IP("link", "set", "lo", "mtu", "1500") })
		return false
	}}
	got, res := lgGet(t, lab, req)
	if res.Options["blksize"] != "8192" || res.Options["windowsize"] != "4" {
		t.Fatalf("OACK %v, want blksize 8192 and windowsize 4", res.Options)
	}
	if !bytes.Equal(got, fileBytes(t, lab, "ipxe.efi")) {
		t.Fatalf("got %d bytes, want the file's %d", len(got), tftpFiles["ipxe.efi"])
	}
	waitFor(t, "the transfer to end", func() bool { return lab.srv.Stats().Active == 0 })
	if st := lab.srv.Stats(); st.Failed != 0 || st.Retransmits != 0 || res.Duplicates != 0 {
		t.Errorf("stats %+v, %d duplicate blocks: want no failure, no retransmission, no duplicate", st, res.Duplicates)
	}
}
