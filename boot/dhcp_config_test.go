package boot

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/boot/netns"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string
	}{
		{"10.0.0.100-10.0.0.200", Range{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.200")}, ""},
		{" 10.0.0.5 - 10.0.0.5 ", Range{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.5")}, ""},
		{"10.0.0.200-10.0.0.100", Range{}, "end is before start"},
		{"10.0.0.100", Range{}, "want START-END"},
		{"10.0.0.1-fe80::1", Range{}, "IPv4"},
		{"a-b", Range{}, "IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if r, _ := ParseRange("10.0.0.100-10.0.0.200"); r.Size() != 101 {
		t.Fatalf("size %d, want 101", r.Size())
	}
	if _, err := ParseMode("relay"); err == nil {
		t.Fatal("ParseMode accepted relay")
	}
}

func TestDHCP_ConfigErrorsAreClear(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	tests := []struct {
		name    string
		edit    func(*DHCPConfig)
		wantErr string
	}{
		{"full mode without a range", func(c *DHCPConfig) { c.Range = Range{} }, "needs a range"},
		{"range outside the subnet", func(c *DHCPConfig) {
			c.Range = Range{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.9")}
		}, "outside interface"},
		{"range holding the server", func(c *DHCPConfig) {
			c.Range = Range{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.9")}
		}, "server's own address"},
		{"no advertise URL", func(c *DHCPConfig) { c.AdvertiseURL = "" }, "AdvertiseURL is required"},
		{"bad mode", func(c *DHCPConfig) { c.Mode = "relay" }, "want full or proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(ModeFull)
			tt.edit(&cfg)
			if _, err := newDHCP(cfg, testLink, inv, inv, quietLogger()); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDHCP_MissingOrAddresslessInterfaceIsAClearError(t *testing.T) {
	ns := netns.New(t, "cfg")
	ns.IP("link", "add", "bare0", "type", "veth", "peer", "name", "bare1")
	ns.IP("link", "set", "bare0", "up")
	inv := openTestStore(t, t.TempDir())
	tests := []struct {
		iface   string
		wantErr string
	}{
		{"", "no interface given"},
		{"nosuch0", "dhcp interface nosuch0"},
		{"bare0", "has no IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.iface, func(t *testing.T) {
			cfg := testConfig(ModeFull)
			cfg.Interface = tt.iface
			err := ns.Do(func() error {
				s, err := NewDHCP(cfg, inv, inv, quietLogger())
				if err == nil {
					s.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
