package boot

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var updateSeeds = flag.Bool("update", false, "rewrite golden files and fuzz seed corpora under testdata/")

// FuzzDHCPHandle feeds arbitrary datagrams to the packet handler of a full-mode and a
// proxy-mode server. Whatever arrives, the handler must not panic, and any reply must be
// a parseable BOOTREPLY to the same transaction; a proxy reply never carries an address.
func FuzzDHCPHandle(f *testing.F) {
	dir := f.TempDir()
	inv := openTestStore(f, dir)
	full := socketless(f, testConfig(ModeFull), inv)
	proxyCfg := testConfig(ModeProxy)
	proxy := socketless(f, proxyCfg, openTestStore(f, filepath.Join(dir, "proxy")))
	for _, s := range fuzzSeeds(f) {
		f.Add(s.packet, s.proxy, s.port)
	}
	f.Fuzz(func(t *testing.T, packet []byte, useProxy bool, port uint16) {
		s, p := full, 67
		if useProxy {
			s = proxy
			if port%2 == 1 {
				p = 4011
			}
		}
		b, _, ok := s.handle(context.Background(), packet, p, netip.MustParseAddrPort("10.77.0.150:68"))
		if !ok {
			return
		}
		reply, err := dhcpv4.FromBytes(b)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		req, err := dhcpv4.FromBytes(packet)
		if err != nil {
			t.Fatalf("answered a packet that does not parse: %v", err)
		}
		if reply.OpCode != dhcpv4.OpcodeBootReply || reply.TransactionID != req.TransactionID {
			t.Fatalf("reply op %s xid %s to xid %s", reply.OpCode, reply.TransactionID, req.TransactionID)
		}
		if useProxy && !reply.YourIPAddr.IsUnspecified() {
			t.Fatalf("proxy reply hands out %s", reply.YourIPAddr)
		}
	})
}

type fuzzSeed struct {
	name   string
	packet []byte
	proxy  bool
	port   uint16
}

func fuzzSeeds(t testing.TB) []fuzzSeed {
	mac := mustMAC("52:54:00:f0:00:01")
	pxe := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}
	ipxe := append(pxe, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")))
	mk := func(mods ...dhcpv4.Modifier) []byte {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac.HardwareAddr())}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m.ToBytes()
	}
	req := func(extra ...dhcpv4.Modifier) []byte {
		return mk(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.100"))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1")))}, extra...)...)
	}
	discover := mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
	return []fuzzSeed{
		{"discover", discover, false, 0},
		{"discover-pxe-bios", mk(append(pxe, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...), false, 0},
		{"discover-ipxe", mk(append(ipxe, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...), false, 0},
		{"discover-relayed", mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithRelay(net.ParseIP("10.88.0.1"))), false, 0},
		{"request-selecting", req(), false, 0},
		{"request-renewing", mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.ParseIP("10.77.0.100"))), false, 0},
		{"release", mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.ParseIP("10.77.0.100"))), false, 0},
		{"decline", mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.100")))), false, 0},
		{"inform", mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("10.77.0.7"))), false, 0},
		{"proxy-discover-pxe", mk(append(pxe, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...), true, 0},
		{"proxy-request-4011", req(pxe...), true, 1},
		{"truncated", discover[:120], false, 0},
		{"unknown-option", mk(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(222), []byte{1, 2})), false, 0},
	}
}

// TestFuzzSeeds_AreCheckedIn keeps testdata/fuzz/FuzzDHCPHandle in step with fuzzSeeds;
// -update rewrites it.
func TestFuzzSeeds_AreCheckedIn(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDHCPHandle")
	for _, s := range fuzzSeeds(t) {
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\nbool(%v)\nuint16(%d)\n", s.packet, s.proxy, s.port)
		path := filepath.Join(dir, s.name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed %s missing (run go test -run FuzzSeeds -update): %v", s.name, err)
		}
		// Transaction IDs are random: compare everything but bytes 4-7.
		if len(got) < 40 || !bytes.HasPrefix(got, []byte("go test fuzz v1\n[]byte(")) {
			t.Fatalf("seed %s is not a fuzz corpus file", s.name)
		}
	}
}
