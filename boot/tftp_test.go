package boot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/ipxe"
)

func TestTFTP_RealClientsGetTheExactBytes(t *testing.T) {
	tftpRequireTool(t, "tftp")
	tftpRequireTool(t, "curl")
	lab := newTFTPLab(t, TFTPConfig{})
	ctx := context.Background()
	out := t.TempDir()
	clients := []struct {
		name string
		argv func(file, dst string) []string
	}{
		{"tftp-hpa default mode", func(f, d string) []string { return []string{"tftp", "127.0.0.1", "-c", "get", f, d} }},
		{"tftp-hpa binary", func(f, d string) []string { return []string{"tftp", "-m", "binary", "127.0.0.1", "-c", "get", f, d} }},
		{"tftp-hpa verbose binary", func(f, d string) []string {
			return []string{"tftp", "-v", "-m", "binary", "127.0.0.1", "-c", "get", f, d}
		}},
		{"curl", func(f, d string) []string { return []string{"curl", "-sS", "-o", d, "tftp://127.0.0.1/" + f} }},
		{"curl blksize 1468", func(f, d string) []string {
			return []string{"curl", "-sS", "--tftp-blksize", "1468", "-o", d, "tftp://127.0.0.1/" + f}
		}},
		{"curl blksize 8192", func(f, d string) []string {
			return []string{"curl", "-sS", "--tftp-blksize", "8192", "-o", d, "tftp://127.0.0.1/" + f}
		}},
		{"curl no options", func(f, d string) []string {
			return []string{"curl", "-sS", "--tftp-no-options", "-o", d, "tftp://127.0.0.1/" + f}
		}},
	}
	served := 0
	for _, c := range clients {
		for file := range tftpFiles {
			t.Run(c.name+"/"+file, func(t *testing.T) {
				dst := filepath.Join(out, strings.ReplaceAll(c.name, " ", "_")+"-"+file)
				argv := c.argv(file, dst)
				if msg, err := lab.ns.Exec(ctx, argv[0], argv[1:]...); err != nil {
					t.Fatalf("%v: %s", err, msg)
				}
				want, _ := os.ReadFile(filepath.Join(lab.dir, file))
				got, err := os.ReadFile(dst)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: got %d bytes, want the %d bytes of the file", file, len(got), len(want))
				}
			})
			served++
		}
	}
	st := lab.srv.Stats()
	if st.Served != uint64(served) || st.Failed != 0 || st.Refused != 0 {
		t.Errorf("stats = %+v, want %d served and nothing else", st, served)
	}
}

// TestTFTP_TsizeAndBlksizeAreNegotiated reads the OACK itself: pin/tftp's client would
// hide a missing option.
func TestTFTP_TsizeAndBlksizeAreNegotiated(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{})
	tests := []struct {
		blksize, want string
	}{
		{"1468", "1468"},
		{"512", "512"},
		{"65464", "65464"}, // loopback's MTU allows the RFC 2348 maximum
	}
	for _, tt := range tests {
		conn := lab.udpIn(t)
		req := rrq("ipxe.efi", "octet", "tsize", "0", "blksize", tt.blksize)
		if _, err := conn.WriteTo(req, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 69}); err != nil {
			t.Fatal(err)
		}
		opts, peer := readOACK(t, conn)
		if opts["tsize"] != "1048576" || opts["blksize"] != tt.want {
			t.Errorf("blksize %s: OACK %v, want tsize 1048576 and blksize %s", tt.blksize, opts, tt.want)
		}
		abortTransfer(conn, peer)
	}
}

func TestTFTP_RefusesWritesPathsAndUnknownNames(t *testing.T) {
	tftpRequireTool(t, "tftp")
	tftpRequireTool(t, "curl")
	lab := newTFTPLab(t, TFTPConfig{})
	ctx := context.Background()
	out := t.TempDir()
	upload := filepath.Join(out, "upload.efi")
	if err := os.WriteFile(upload, []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(lab.dir, lab.secret)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		argv  []string
		count func(TFTPStats) uint64
	}{
		{"tftp put", []string{"tftp", "-m", "binary", "127.0.0.1", "-c", "put", upload, "ipxe.efi"}, func(s TFTPStats) uint64 { return s.WritesRefused }},
		{"curl upload", []string{"curl", "-sS", "-T", upload, "tftp://127.0.0.1/new.efi"}, func(s TFTPStats) uint64 { return s.WritesRefused }},
		{"tftp get ../", []string{"tftp", "127.0.0.1", "-c", "get", rel, filepath.Join(out, "a")}, func(s TFTPStats) uint64 { return s.Refused }},
		{"tftp get absolute", []string{"tftp", "127.0.0.1", "-c", "get", lab.secret, filepath.Join(out, "b")}, func(s TFTPStats) uint64 { return s.Refused }},
		{"curl ../ as is", []string{"curl", "-sS", "--path-as-is", "-o", filepath.Join(out, "c"), "tftp://127.0.0.1/" + rel}, func(s TFTPStats) uint64 { return s.Refused }},
		{"tftp get unknown", []string{"tftp", "127.0.0.1", "-c", "get", "pxelinux.0", filepath.Join(out, "d")}, func(s TFTPStats) uint64 { return s.NotFound }},
		{"curl get option ROM", []string{"curl", "-sS", "-o", filepath.Join(out, "e"), "tftp://127.0.0.1/e1000.rom"}, func(s TFTPStats) uint64 { return s.NotFound }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.count(lab.srv.Stats())
			msg, err := lab.ns.Exec(ctx, tt.argv[0], tt.argv[1:]...)
			// tftp-hpa exits 0 even on a TFTP error; it prints the error instead.
			if err == nil && !strings.Contains(strings.ToLower(string(msg)), "error") {
				t.Errorf("client reported success: %s", msg)
			}
			if got := tt.count(lab.srv.Stats()); got != before+1 {
				t.Errorf("counter went %d → %d, want one more", before, got)
			}
		})
	}
	for _, f := range []string{"a", "b", "c"} {
		if b, err := os.ReadFile(filepath.Join(out, f)); err == nil && bytes.Contains(b, []byte("join-token")) {
			t.Errorf("the secret leaked into %s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(lab.dir, "ipxe.efi")); bytes.Equal(b, []byte("evil")) {
		t.Error("a write request changed ipxe.efi")
	}
	if st := lab.srv.Stats(); st.Served != 0 {
		t.Errorf("refused requests served %d files", st.Served)
	}
}

func TestTFTP_MalformedRequestsAreCountedAndServingGoesOn(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 200 * time.Millisecond, Retries: 1})
	long := strings.Repeat("x", 3000)
	// Bad option values are ignored as RFC 2347 lets a server do: the file is sent with
	// the defaults. Requests longer than a datagram buffer (516 bytes) are cut there.
	const (
		malformed = "malformed" // counted, no answer
		answered  = "answered"  // OACK or DATA with sane options
		refused   = "refused"   // counted as Refused, answered with ERROR
	)
	tests := []struct {
		name   string
		packet []byte
		want   string
	}{
		{"one byte", []byte{0}, malformed},
		{"unknown opcode", []byte{0, 9, 'a', 0}, malformed},
		{"stray DATA", []byte{0, 3, 0, 1, 'x'}, malformed},
		{"RRQ without terminator", []byte{0, 1, 'a', 'b', 'c'}, malformed},
		{"RRQ 3000-byte name", rrq(long, "octet"), malformed},
		{"RRQ empty name", rrq("", "octet"), malformed},
		{"RRQ blksize not a number", rrq("undionly.kpxe", "octet", "blksize", "abc"), answered},
		{"RRQ blksize too small", rrq("undionly.kpxe", "octet", "blksize", "1"), answered},
		{"RRQ blksize overflows", rrq("undionly.kpxe", "octet", "blksize", "99999999999999999999999"), answered},
		{"RRQ tsize negative", rrq("undionly.kpxe", "octet", "tsize", "-5"), answered},
		{"RRQ 3000-byte option", rrq("undionly.kpxe", "octet", long, long), answered},
		{"RRQ odd option count", rrq("undionly.kpxe", "octet", "blksize"), answered},
		{"RRQ unknown mode", rrq("undionly.kpxe", "mail"), answered},
		{"RRQ name with NUL-free control bytes", rrq("ipxe.efi\r\n", "octet"), refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := lab.srv.Stats()
			conn := lab.udpIn(t)
			if _, err := conn.WriteTo(tt.packet, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 69}); err != nil {
				t.Fatal(err)
			}
			switch tt.want {
			case answered:
				op, opts, peer := readAnswer(t, conn)
				if op != 3 && op != 6 {
					t.Errorf("answer opcode %d, want DATA or OACK", op)
				}
				if b, ok := opts["blksize"]; ok && b != "512" {
					t.Errorf("OACK blksize %q for a bad request", b)
				}
				abortTransfer(conn, peer)
			case refused:
				if op, _, _ := readAnswer(t, conn); op != 5 {
					t.Errorf("answer opcode %d, want ERROR", op)
				}
			}
			// Whatever came of it, a well-formed request right after is served in full.
			got := tftpGet(t, lab, "undionly.kpxe", 1468)
			want, _ := os.ReadFile(filepath.Join(lab.dir, "undionly.kpxe"))
			if !bytes.Equal(got, want) {
				t.Fatalf("after %s: got %d bytes, want %d", tt.name, len(got), len(want))
			}
			after := lab.srv.Stats()
			counted := map[string]uint64{
				malformed: after.Malformed - before.Malformed,
				refused:   after.Refused - before.Refused,
			}
			for kind, n := range counted {
				if wantN := map[bool]uint64{true: 1}[kind == tt.want]; n != wantN {
					t.Errorf("%s counter moved by %d, want %d", kind, n, wantN)
				}
			}
		})
	}
}

// tftpGet fetches a file with pin/tftp's client from inside the lab's namespace.
func tftpGet(t testing.TB, lab *tftpLab, file string, blksize int) []byte {
	t.Helper()
	c, err := tftp.NewClient("127.0.0.1:69")
	if err != nil {
		t.Fatal(err)
	}
	c.SetBlockSize(blksize)
	c.RequestTSize(true)
	c.SetTimeout(2 * time.Second)
	var wt io.WriterTo
	if err := lab.ns.Do(func() error {
		var err error
		wt, err = c.Receive(file, "octet")
		return err
	}); err != nil {
		t.Fatalf("receive %s: %v", file, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		t.Fatalf("transfer %s: %v", file, err)
	}
	return buf.Bytes()
}

// rrq builds a read request: opcode 1, then NUL-terminated fields.
func rrq(fields ...string) []byte {
	b := []byte{0, 1}
	for _, f := range fields {
		b = append(append(b, f...), 0)
	}
	return b
}

// readOACK waits for the server's first answer and decodes an OACK.
func readOACK(t testing.TB, conn *net.UDPConn) (map[string]string, *net.UDPAddr) {
	t.Helper()
	op, opts, peer := readAnswer(t, conn)
	if op != 6 {
		t.Fatalf("answer is opcode %d, want OACK (6)", op)
	}
	return opts, peer
}

// readAnswer waits for the server's first answer: its opcode, the options of an OACK,
// and the transfer's address.
func readAnswer(t testing.TB, conn *net.UDPConn) (uint16, map[string]string, *net.UDPAddr) {
	t.Helper()
	buf := make([]byte, 65536)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, peer, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("answer of %d bytes", n)
	}
	op := binary.BigEndian.Uint16(buf)
	opts := map[string]string{}
	if op == 6 {
		fields := bytes.Split(buf[2:n], []byte{0})
		for i := 0; i+1 < len(fields); i += 2 {
			opts[string(fields[i])] = string(fields[i+1])
		}
	}
	return op, opts, peer
}

// abortTransfer tells the server's transfer socket to stop (ERROR, code 0).
func abortTransfer(conn *net.UDPConn, peer *net.UDPAddr) {
	_, _ = conn.WriteTo([]byte{0, 5, 0, 0, 'b', 'y', 'e', 0}, peer)
}

func TestNewTFTP_RefusesBadConfiguration(t *testing.T) {
	dir, _ := tftpTestDir(t)
	bins, err := ipxe.OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []TFTPConfig{{}, {Listen: "nonsense"}, {Listen: "127.0.0.1:69", MaxBlockSize: 7}, {Listen: "127.0.0.1:69", MaxBlockSize: 65465}, {Listen: "127.0.0.1:69", MaxWindowSize: -1}} {
		if _, err := NewTFTP(cfg, bins, nil); err == nil {
			t.Errorf("NewTFTP(%+v) accepted it", cfg)
		}
	}
	if _, err := NewTFTP(TFTPConfig{Listen: "127.0.0.1:69"}, nil, nil); err == nil {
		t.Error("NewTFTP without binaries accepted")
	}
}

func TestTFTPRun_ASecondServerOnTheAddressFailsAtOnce(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{})
	// A second server on the same address must fail at once with the address in the error.
	second, err := NewTFTP(TFTPConfig{Listen: "127.0.0.1:69"}, lab.bins, tftpQuietLog())
	if err != nil {
		t.Fatal(err)
	}
	err = lab.ns.Do(func() error { return second.Run(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:69") {
		t.Errorf("second Run = %v, want a bind error naming the address", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("bind error %v does not wrap the *net.OpError", err)
	}
}

// TestTFTP_LostAcksAreRetransmittedAndTheFileArrivesWhole plays a client on a lossy link:
// it ignores some DATA packets, as if they or its ACKs were lost, and expects the server
// to send them again until the whole file has arrived.
func TestTFTP_LostAcksAreRetransmittedAndTheFileArrivesWhole(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{Timeout: 100 * time.Millisecond, Retries: 3})
	conn := lab.udpIn(t)
	if _, err := conn.WriteTo(rrq("undionly.kpxe", "octet"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 69}); err != nil {
		t.Fatal(err)
	}
	lose := map[uint16]int{1: 1, 7: 2, 145: 1} // block → how many of its copies to ignore
	var got []byte
	buf := make([]byte, 516)
	expect := uint16(1)
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, peer, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("waiting for block %d: %v", expect, err)
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != 3 {
			t.Fatalf("got %q, want DATA", buf[:n])
		}
		block := binary.BigEndian.Uint16(buf[2:])
		if block != expect {
			continue // a duplicate of a block already acknowledged
		}
		if lose[block] > 0 {
			lose[block]--
			continue
		}
		got = append(got, buf[4:n]...)
		if _, err := conn.WriteTo([]byte{0, 4, byte(block >> 8), byte(block)}, peer); err != nil {
			t.Fatal(err)
		}
		expect++
		if n < 516 {
			break
		}
	}
	want, _ := os.ReadFile(filepath.Join(lab.dir, "undionly.kpxe"))
	if !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want the %d of the file", len(got), len(want))
	}
}

func TestTFTPRun_CancelClosesTheSocketAndReturns(t *testing.T) {
	netns.Require(t)
	ns := netns.New(t, "tftpstop")
	dir, _ := tftpTestDir(t)
	bins, err := ipxe.OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second round binds the port the first one released
		srv, err := NewTFTP(TFTPConfig{Listen: "127.0.0.1:69"}, bins, tftpQuietLog())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- ns.Do(func() error { return srv.Run(ctx) }) }()
		for srv.Addr() == nil {
			select {
			case err := <-errc:
				t.Fatalf("round %d: Run returned before serving: %v", round, err)
			case <-time.After(2 * time.Millisecond):
			}
		}
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("round %d: Run after cancel = %v, want nil", round, err)
		}
		if srv.Addr() != nil {
			t.Errorf("round %d: Addr still %v after Run returned", round, srv.Addr())
		}
	}
}

func TestTFTP_MaxBlockSizeCapsTheNegotiation(t *testing.T) {
	lab := newTFTPLab(t, TFTPConfig{MaxBlockSize: 1024})
	conn := lab.udpIn(t)
	if _, err := conn.WriteTo(rrq("ipxe.efi", "octet", "blksize", "1468"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 69}); err != nil {
		t.Fatal(err)
	}
	opts, peer := readOACK(t, conn)
	if opts["blksize"] != "1024" {
		t.Errorf("OACK %v, want blksize capped at 1024", opts)
	}
	abortTransfer(conn, peer)
}

// panickyFiles is the real directory whose Open panics for one name.
type panickyFiles struct {
	TFTPFiles
	poison string
}

func (p panickyFiles) Open(name string) (*os.File, int64, error) {
	if name == p.poison {
		panic("injected: a bug in opening " + name)
	}
	return p.TFTPFiles.Open(name)
}

func TestTFTP_APanickingHandlerRefusesThatTransferAndServingGoesOn(t *testing.T) {
	tftpRequireTool(t, "curl")
	lab := newTFTPLabServing(t, TFTPConfig{}, func(b *ipxe.Binaries) TFTPFiles { return panickyFiles{TFTPFiles: b, poison: "undionly.kpxe"} })
	ns, srv, dir := lab.ns, lab.srv, lab.dir
	ctx := context.Background()
	out := t.TempDir()
	for range 3 {
		if msg, err := ns.Exec(ctx, "curl", "-sS", "-o", filepath.Join(out, "poisoned"), "tftp://127.0.0.1/undionly.kpxe"); err == nil {
			t.Fatalf("the poisoned transfer succeeded: %s", msg)
		}
	}
	if st := srv.Stats(); st.Panics != 3 {
		t.Fatalf("panics = %d, want 3", st.Panics)
	}
	got := filepath.Join(out, "ipxe.efi")
	if msg, err := ns.Exec(ctx, "curl", "-sS", "-o", got, "tftp://127.0.0.1/ipxe.efi"); err != nil {
		t.Fatalf("after the panics: %v %s", err, msg)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
	if b, _ := os.ReadFile(got); !bytes.Equal(b, want) {
		t.Fatalf("after the panics ipxe.efi arrived as %d bytes, want %d", len(b), len(want))
	}
}
