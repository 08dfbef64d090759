package node_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestParseMAC_AcceptsOperatorFormsAndStoresLowerCaseColonForm(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"colon lower case", "aa:bb:cc:dd:0e:ff"},
		{"colon upper case", "AA:BB:CC:DD:0E:FF"},
		{"dash upper case (Windows, BMCs)", "AA-BB-CC-DD-0E-FF"},
		{"dash lower case", "aa-bb-cc-dd-0e-ff"},
		{"dotted (Cisco switches)", "aabb.ccdd.0eff"},
		{"bare hex (iPXE hexraw)", "aabbccdd0eff"},
		{"bare hex upper case", "AABBCCDD0EFF"},
	}
	want := node.MAC{0xaa, 0xbb, 0xcc, 0xdd, 0x0e, 0xff}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := node.ParseMAC(tt.in)
			if err != nil {
				t.Fatalf("ParseMAC(%q): %v", tt.in, err)
			}
			if got != want {
				t.Fatalf("ParseMAC(%q) = %v, want %v", tt.in, got, want)
			}
			if got.String() != "aa:bb:cc:dd:0e:ff" {
				t.Fatalf("String() = %q, want the lower-case colon form", got.String())
			}
		})
	}
}

func TestParseMAC_RefusesWhatIsNotA48BitAddress(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"five bytes", "aa:bb:cc:dd:ee"},
		{"seven bytes", "aa:bb:cc:dd:ee:ff:00"},
		{"EUI-64 (8 bytes)", "02:00:5e:10:00:00:00:01"},
		{"EUI-64 dotted", "0200.5e10.0000.0001"},
		{"InfiniBand (20 bytes)", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"},
		{"bare hex too short", "aabbccddeef"},
		{"bare hex too long", "aabbccddeeff0"},
		{"bare twelve non-hex characters", "aabbccddeegg"},
		{"twelve characters with separators", "aa:bb:cc:dd:"},
		{"non-hex digit", "aa:bb:cc:dd:ee:fg"},
		{"mixed separators", "aa:bb-cc:dd-ee:ff"},
		{"garbage", "not a mac"},
		{"leading space", " aa:bb:cc:dd:ee:ff"},
		{"broadcast", "ff:ff:ff:ff:ff:ff"},
		{"broadcast bare hex", "ffffffffffff"},
		{"IPv4 multicast", "01:00:5e:00:00:fb"},
		{"IPv6 multicast", "33:33:00:00:00:01"},
		{"spanning tree group address", "01-80-C2-00-00-00"},
		{"locally administered group address", "03:00:00:00:00:01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := node.ParseMAC(tt.in)
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseMAC(%q) = %v, %v; want an error wrapping ErrInvalid", tt.in, got, err)
			}
			if got != (node.MAC{}) {
				t.Fatalf("ParseMAC(%q) returned %v alongside its error, want the zero MAC", tt.in, got)
			}
		})
	}
}

func TestMAC_JSONIsTheCanonicalStringAndReadsAnyForm(t *testing.T) {
	mac := node.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	b, err := json.Marshal(mac)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"52:54:00:12:34:56"` {
		t.Fatalf("json.Marshal = %s, want the colon form", b)
	}
	var back node.MAC
	if err := json.Unmarshal([]byte(`"52-54-00-12-34-56"`), &back); err != nil {
		t.Fatal(err)
	}
	if back != mac {
		t.Fatalf("json.Unmarshal = %v, want %v", back, mac)
	}
	if err := json.Unmarshal([]byte(`"02:00:5e:10:00:00:00:01"`), &back); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("json.Unmarshal of an EUI-64 = %v, want ErrInvalid", err)
	}
}

func TestMACFromBytes_OnlySixBytesAreAHardwareAddress(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"six bytes", []byte{1, 2, 3, 4, 5, 6}, true},
		{"nil", nil, false},
		{"five bytes", []byte{1, 2, 3, 4, 5}, false},
		{"sixteen bytes (chaddr padded)", make([]byte, 16), false},
		{"twenty bytes (InfiniBand)", make([]byte, 20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := node.MACFromBytes(tt.in)
			if ok != tt.ok {
				t.Fatalf("MACFromBytes(%x) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if ok && string(m[:]) != string(tt.in) {
				t.Fatalf("MACFromBytes(%x) = %v", tt.in, m)
			}
		})
	}
}

func TestMAC_HexAndHardwareAddrAgreeWithString(t *testing.T) {
	mac := node.MAC{0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f}
	if got := mac.Hex(); got != "0a1b2c3d4e5f" {
		t.Fatalf("Hex() = %q", got)
	}
	hw := mac.HardwareAddr()
	if hw.String() != mac.String() {
		t.Fatalf("HardwareAddr() = %s, String() = %s", hw, mac)
	}
	hw[0] = 0xff // a copy: changing it must not change the MAC
	if mac[0] != 0x0a {
		t.Fatal("HardwareAddr shares memory with the MAC")
	}
	if !(node.MAC{}).IsZero() || mac.IsZero() {
		t.Fatal("IsZero is wrong")
	}
}

// FuzzParseMAC checks that whatever ParseMAC accepts survives a round trip through its
// canonical form, and that it never panics on operator or network input.
func FuzzParseMAC(f *testing.F) {
	for _, seed := range []string{
		"aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff",
		"02:00:5e:10:00:00:00:01", "", "zz", "aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := node.ParseMAC(s)
		if err != nil {
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseMAC(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		back, err := node.ParseMAC(m.String())
		if err != nil || back != m {
			t.Fatalf("ParseMAC(%q) = %v, whose String %q parses to %v, %v", s, m, m.String(), back, err)
		}
		if hex, err := node.ParseMAC(m.Hex()); err != nil || hex != m {
			t.Fatalf("Hex form %q of %v parses to %v, %v", m.Hex(), m, hex, err)
		}
	})
}

func TestMAC_IsGroupIsTheIGBitOfTheFirstOctet(t *testing.T) {
	tests := []struct {
		mac  node.MAC
		want bool
	}{
		{node.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, false},
		{node.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}, false}, // locally administered unicast
		{node.MAC{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, true},
		{node.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true},
	}
	for _, tt := range tests {
		if got := tt.mac.IsGroup(); got != tt.want {
			t.Errorf("%s.IsGroup() = %v, want %v", tt.mac, got, tt.want)
		}
	}
}
