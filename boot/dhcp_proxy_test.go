package boot

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func waitABit() { time.Sleep(5 * time.Millisecond) }

func TestProxyDHCP_AnswersPXEClientsOnlyWithBootInformation(t *testing.T) {
	s := socketless(t, testConfig(ModeProxy), openTestStore(t, t.TempDir()))
	mac := mustMAC("52:54:00:00:20:01")
	pxe := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
	}
	request := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac.HardwareAddr()),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.ParseIP("10.77.0.150"))}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name string
		msg  *dhcpv4.DHCPv4
		port int
		want dhcpv4.MessageType // 0: silence
	}{
		{"PXE DISCOVER on 67 gets a proxy offer", discoverFrom(t, mac, pxe...), 67, dhcpv4.MessageTypeOffer},
		{"PXE REQUEST on 4011 gets an ACK", request(pxe...), 4011, dhcpv4.MessageTypeAck},
		{"PXE REQUEST on 67 is for the address server", request(pxe...), 67, 0},
		{"a plain DHCP DISCOVER is ignored", discoverFrom(t, mac), 67, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, dst := exchange(t, s, tt.msg, tt.port)
			if tt.want == 0 {
				if reply != nil {
					t.Fatalf("got %s, want silence", reply.MessageType())
				}
				return
			}
			if reply == nil || reply.MessageType() != tt.want {
				t.Fatalf("got %v, want %s", reply, tt.want)
			}
			if !reply.YourIPAddr.IsUnspecified() || reply.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
				t.Fatalf("proxy reply carries an address: yiaddr %s", reply.YourIPAddr)
			}
			if !reply.ServerIPAddr.Equal(net.ParseIP("10.77.0.1")) {
				t.Fatalf("siaddr %s: iPXE ignores proxy answers without a next-server", reply.ServerIPAddr)
			}
			if reply.BootFileNameOption() != "ipxe.efi" || reply.ClassIdentifier() != "PXEClient" {
				t.Fatalf("file %q class %q", reply.BootFileNameOption(), reply.ClassIdentifier())
			}
			if v := reply.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(v, []byte{6, 1, 8, 255}) {
				t.Fatalf("option 43 = %x, want discovery control 8", v)
			}
			if len(reply.Options.Get(dhcpv4.OptionClientMachineIdentifier)) != 17 {
				t.Fatal("option 97 not echoed")
			}
			if tt.port == 67 && dst.Addr() != broadcast {
				t.Fatalf("offer sent to %s, want broadcast", dst)
			}
		})
	}
	// The port-4011 ACK goes back to where the request came from.
	b, dst, ok := s.handle(t.Context(), request(pxe...).ToBytes(), 4011, netip.MustParseAddrPort("10.77.0.150:68"))
	if !ok || len(b) == 0 || dst != netip.MustParseAddrPort("10.77.0.150:68") {
		t.Fatalf("4011 ACK to %s (ok %v), want the sender", dst, ok)
	}
}
