package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
)

// fakeTFTP is a lock-step TFTP server with faults on purpose, to prove the load's
// machines recover from them (or fail and are counted): it never retransmits on its own,
// so a lost block is found again only if the machine re-sends its last ACK. A repeated
// ACK of a block it did send is ignored (RFC 1123 4.2.3.1: no Sorcerer's Apprentice).
type fakeTFTP struct {
	conn *net.UDPConn
	file []byte
	tftpFaults

	mu          sync.Mutex
	byPeer      map[netip.AddrPort]*fakeRead
	askedBefore map[netip.AddrPort]bool
	addrs       map[netip.Addr]bool // every machine address seen
	repeatedAck int                 // ACKs of a block already acknowledged: the machines' re-sends
	served      int
	// allServed is closed when served reaches wantServed.
	wantServed int
	allServed  chan struct{}
}

// tftpFaults are what fakeTFTP does wrong.
type tftpFaults struct {
	// dropOnce is a block lost the first time it is sent to each machine.
	dropOnce uint16
	// ignoreFirstRRQ loses each machine's first request.
	ignoreFirstRRQ bool
	// silentAfter, when set, is the last block sent to a machine whose address ends in
	// an odd number; after it, the server never answers that machine again.
	silentAfter uint16
	// tsizeDelta is added to the size announced in the OACK (a server that lies).
	tsizeDelta int
}

type fakeRead struct {
	blksize int
	acked   int // last block acknowledged; -1 before the OACK's ACK
	sent    int // last block sent
	dropped bool
}

// startFakeTFTP serves file on 127.0.0.1:69 in ns until the test ends.
func startFakeTFTP(t *testing.T, ns *netns.NS, f *fakeTFTP) {
	t.Helper()
	if err := ns.Do(func() error {
		var err error
		f.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 69})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f.byPeer, f.askedBefore, f.addrs = map[netip.AddrPort]*fakeRead{}, map[netip.AddrPort]bool{}, map[netip.Addr]bool{}
	done := make(chan struct{})
	go func() { defer close(done); f.serve() }()
	t.Cleanup(func() { f.conn.Close(); <-done })
}

func (f *fakeTFTP) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n < 4 {
			continue
		}
		f.mu.Lock()
		f.addrs[from.Addr()] = true
		switch binary.BigEndian.Uint16(buf) {
		case 1:
			f.request(buf[2:n], from)
		case 4:
			f.ack(int(binary.BigEndian.Uint16(buf[2:])), from)
		}
		f.mu.Unlock()
	}
}

func (f *fakeTFTP) request(body []byte, from netip.AddrPort) {
	if f.ignoreFirstRRQ && !f.askedBefore[from] {
		f.askedBefore[from] = true
		return
	}
	r := f.byPeer[from]
	if r == nil || r.acked >= 0 {
		r = &fakeRead{blksize: 512, acked: -1} // a new read (the machine gave up the last)
	} // else the request again: its OACK was lost, or is late
	fields := bytes.Split(body, []byte{0})
	for i := 2; i+1 < len(fields); i += 2 {
		if string(fields[i]) == "blksize" {
			r.blksize, _ = strconv.Atoi(string(fields[i+1]))
		}
	}
	f.byPeer[from] = r
	oack := []byte{0, 6}
	oack = append(append(oack, "blksize\x00"...), strconv.Itoa(r.blksize)+"\x00"...)
	oack = append(append(oack, "tsize\x00"...), strconv.Itoa(len(f.file)+f.tsizeDelta)+"\x00"...)
	f.conn.WriteToUDPAddrPort(oack, from)
}

func (f *fakeTFTP) ack(block int, from netip.AddrPort) {
	r := f.byPeer[from]
	if r == nil {
		return
	}
	if block == r.acked {
		f.repeatedAck++
		if r.sent > block {
			return
		}
	} else if block != r.acked+1 {
		return
	}
	r.acked = block
	off := block * r.blksize
	if off > len(f.file) {
		delete(f.byPeer, from) // the ACK of the last block
		f.served++
		if f.served == f.wantServed {
			close(f.allServed)
		}
		return
	}
	next := uint16(block + 1)
	if next == f.dropOnce && !r.dropped {
		r.dropped = true
		return
	}
	if f.silentAfter > 0 && next > f.silentAfter && from.Addr().As4()[3]%2 == 1 {
		return
	}
	r.sent = int(next)
	data := f.file[off:min(off+r.blksize, len(f.file))]
	f.conn.WriteToUDPAddrPort(append([]byte{0, 3, byte(next >> 8), byte(next)}, data...), from)
}

func TestTFTPLoad_MachinesRecoverFromLossAndCountWhatTheyCannot(t *testing.T) {
	netns.Require(t)
	file := make([]byte, 100_000) // 68 blocks of 1,468 bytes and a short one
	if _, err := rand.Read(file); err != nil {
		t.Fatal(err)
	}
	const machines, transfers = 20, 60
	tests := []struct {
		name   string
		server tftpFaults
		expect func([]byte) []byte // the content the run expects; nil: the file
		// what the run must count
		allFail     bool
		someFail    bool
		errContains string
		// At least this many re-sends (a loaded machine may time out more often).
		minResends int
	}{
		{name: "nothing lost"},
		{name: "a block lost once in each read: the machine re-sends its last ACK",
			server: tftpFaults{dropOnce: 5}, minResends: transfers},
		{name: "the last block lost once", server: tftpFaults{dropOnce: 69}, minResends: transfers},
		{name: "each machine's first request lost: sent again",
			server: tftpFaults{ignoreFirstRRQ: true}, minResends: machines},
		{name: "half the machines' server goes silent: they give up, the others finish",
			server: tftpFaults{silentAfter: 10}, someFail: true, errContains: "no answer after 4 tries (block 11)",
			minResends: 3},
		{name: "a tsize that is not the file's size", server: tftpFaults{tsizeDelta: 1}, allFail: true,
			errContains: "the server's tsize said 100001"},
		{name: "content that is not the file's",
			expect: func(b []byte) []byte { c := bytes.Clone(b); c[50_000]++; return c }, allFail: true,
			errContains: "block 35: bytes 49912 to 51380 differ"},
		{name: "a file shorter than expected",
			expect: func(b []byte) []byte { return append(bytes.Clone(b), 0) }, allFail: true,
			errContains: "100000 bytes, the file has 100001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := netns.New(t, "tload")
			srv := &fakeTFTP{file: file, tftpFaults: tt.server, wantServed: transfers, allServed: make(chan struct{})}
			startFakeTFTP(t, ns, srv)
			var clients *TFTPClients
			if err := ns.Do(func() error {
				var err error
				clients, err = OpenTFTPClients(netip.MustParseAddr("127.1.0.1"), machines, 2)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer clients.Close()
			want := file
			if tt.expect != nil {
				want = tt.expect(file)
			}
			res, err := TFTPLoad(context.Background(), TFTPLoadConfig{Clients: clients, Transfers: transfers, Expect: want,
				Request: TFTPRequest{Server: netip.MustParseAddrPort("127.0.0.1:69"), File: "f", BlockSize: 1468,
					Timeout: 100 * time.Millisecond, Retries: 3}})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res)
			if res.Transfers+res.Failures != transfers {
				t.Errorf("%d transfers and %d failures, want %d in all", res.Transfers, res.Failures, transfers)
			}
			if res.Bytes != int64(res.Transfers*len(file)) || res.Duplicates != 0 {
				t.Errorf("%d bytes and %d duplicate blocks for %d whole reads", res.Bytes, res.Duplicates, res.Transfers)
			}
			switch {
			case tt.allFail && res.Transfers != 0, tt.someFail && (res.Transfers == 0 || res.Failures == 0),
				!tt.allFail && !tt.someFail && res.Failures != 0:
				t.Errorf("%d whole, %d failed (first failure %v)", res.Transfers, res.Failures, res.Err)
			}
			if tt.errContains != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errContains)) {
				t.Errorf("first failure %v, want one saying %q", res.Err, tt.errContains)
			}
			if !tt.allFail && !tt.someFail {
				// The server counts a read when the last ACK reaches it, just after the run.
				select {
				case <-srv.allServed:
				case <-time.After(20 * time.Second):
					t.Fatal("the server did not count every read")
				}
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if res.Resends < tt.minResends {
				t.Errorf("%d re-sends, want at least %d", res.Resends, tt.minResends)
			}
			// The server never resends on its own: each read got its lost block back only
			// because the machine acknowledged the one before it again.
			if tt.server.dropOnce != 0 && srv.repeatedAck < transfers {
				t.Errorf("the server saw %d repeated ACKs, want at least one per read (%d)", srv.repeatedAck, transfers)
			}
			// Each machine reads from its own address, as a rack's machines do.
			if len(srv.addrs) != machines {
				t.Errorf("the server saw %d client addresses, want one per machine (%d)", len(srv.addrs), machines)
			}
		})
	}
}

func TestTFTPLoad_ACancelledRunStopsAndCountsWhatWasInFlight(t *testing.T) {
	netns.Require(t)
	ns := netns.New(t, "tload")
	// A server that answers nothing: every read is in flight until the context ends.
	srv := &fakeTFTP{tftpFaults: tftpFaults{ignoreFirstRRQ: true}, file: []byte("x")}
	startFakeTFTP(t, ns, srv)
	var clients *TFTPClients
	if err := ns.Do(func() error {
		var err error
		clients, err = OpenTFTPClients(netip.MustParseAddr("127.1.0.1"), 5, 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer clients.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once every machine has sent its request.
		for {
			srv.mu.Lock()
			n := len(srv.askedBefore)
			srv.mu.Unlock()
			if n == 5 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	res, err := TFTPLoad(ctx, TFTPLoadConfig{Clients: clients, Transfers: 100,
		Request: TFTPRequest{Server: netip.MustParseAddrPort("127.0.0.1:69"), File: "f", Timeout: time.Hour}})
	if !errors.Is(err, context.Canceled) || res.Failures != 5 || res.Transfers != 0 {
		t.Errorf("err %v, %d failures, %d transfers: want the run cancelled with the 5 reads in flight failed", err, res.Failures, res.Transfers)
	}
}

func TestOpenTFTPClients_RefusesWhatItCannotOpen(t *testing.T) {
	for _, tt := range []struct {
		first    string
		n, loops int
	}{
		{"::1", 1, 1},
		{"127.0.0.1", 0, 1},
		{"127.0.0.1", 1, 0},
		{"255.255.255.250", 10, 1},
	} {
		if c, err := OpenTFTPClients(netip.MustParseAddr(tt.first), tt.n, tt.loops); err == nil {
			c.Close()
			t.Errorf("OpenTFTPClients(%s, %d, %d) opened sockets, want an error", tt.first, tt.n, tt.loops)
		}
	}
}
