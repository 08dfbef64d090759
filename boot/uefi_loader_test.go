package boot

import (
	"context"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/node"
)

// TestBootFile_UEFILoaderSettingPicksShimOrIPXE: the node's setting wins over the site's,
// the site's over the default (ipxe); BIOS and iPXE itself are never offered shim.
func TestBootFile_UEFILoaderSettingPicksShimOrIPXE(t *testing.T) {
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016"))
	http := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001"))
	arch := func(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }
	uefi := []dhcpv4.Modifier{pxe, arch(iana.EFI_BC)}
	tests := []struct {
		name       string
		site, own  node.UEFILoader
		imported   bool
		mods       []dhcpv4.Modifier
		wantFile   string
		shimServed bool
	}{
		{"default: iPXE", "", "", true, uefi, "ipxe.efi", true},
		{"site shim: shim", node.LoaderShim, "", true, uefi, "shimx64.efi", true},
		{"site shim, unknown machine: shim", node.LoaderShim, "", false, uefi, "shimx64.efi", true},
		{"site shim, node ipxe: iPXE", node.LoaderShim, node.LoaderIPXE, true, uefi, "ipxe.efi", true},
		{"site ipxe, node shim: shim", node.LoaderIPXE, node.LoaderShim, true, uefi, "shimx64.efi", true},
		{"site shim, arch 9: shim", node.LoaderShim, "", true, []dhcpv4.Modifier{pxe, arch(iana.EFI_X86_64)}, "shimx64.efi", true},
		// Debian's signed GRUB cannot go on over HTTP: HTTP boot keeps iPXE.
		{"site shim, UEFI HTTP boot: iPXE's URL", node.LoaderShim, "", true, []dhcpv4.Modifier{http, arch(iana.EFI_X86_64_HTTP)},
			"http://10.77.0.1:8080/ipxe/ipxe.efi", true},
		{"site shim, BIOS: undionly.kpxe", node.LoaderShim, "", true, []dhcpv4.Modifier{pxe, arch(iana.INTEL_X86PC)}, "undionly.kpxe", true},
		{"site shim, iPXE asking: its script", node.LoaderShim, "", true, append([]dhcpv4.Modifier{
			dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))}, uefi...),
			"http://10.77.0.1:8080/boot.ipxe?mac=52:54:00:12:34:56", true},
		{"node shim but no shim served: iPXE", "", node.LoaderShim, true, uefi, "ipxe.efi", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			inv := openTestStore(t, t.TempDir())
			mac := mustMAC("52:54:00:12:34:56")
			if _, err := inv.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error { c.UEFILoader = tt.site; return nil }); err != nil {
				t.Fatal(err)
			}
			if tt.imported {
				if _, err := inv.ImportNode(ctx, node.Node{Name: "n-1", MACs: []node.MAC{mac}, Role: node.RoleWorker, UEFILoader: tt.own}, "test"); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(ModeFull)
			if tt.shimServed {
				cfg.BootFiles.EFIx64Shim = "shimx64.efi"
			}
			cfg.Loaders = NewStoreLoaders(inv.NewNodeCache(), inv, quietLogger())
			s := socketless(t, cfg, inv)
			offer, _ := exchange(t, s, discoverFrom(t, mac, tt.mods...), 67)
			if offer == nil {
				t.Fatal("no offer")
			}
			if got := offer.BootFileNameOption(); got != tt.wantFile {
				t.Fatalf("option 67 = %q, want %q", got, tt.wantFile)
			}
		})
	}
}

// BenchmarkDHCPHandleDiscoverShimPolicy is BenchmarkDHCPHandleDiscover with the Secure
// Boot chain served and the loader policy asked (a node record read per UEFI x86-64
// DISCOVER, the site's setting cached): the cost the signed chain adds to the hot path.
func BenchmarkDHCPHandleDiscoverShimPolicy(b *testing.B) {
	inv := openTestStore(b, b.TempDir())
	mac := mustMAC("52:54:00:be:00:01")
	ctx := context.Background()
	if _, err := inv.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error { c.UEFILoader = node.LoaderShim; return nil }); err != nil {
		b.Fatal(err)
	}
	if _, err := inv.ImportNode(ctx, node.Node{Name: "n-1", MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test"); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(ModeFull)
	cfg.BootFiles.EFIx64Shim = "shimx64.efi"
	cfg.Loaders = NewStoreLoaders(inv.NewNodeCache(), inv, quietLogger())
	s := socketless(b, cfg, inv)
	pkt := discoverFrom(b, mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))).ToBytes()
	peer := netip.MustParseAddrPort("0.0.0.0:68")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := s.handle(ctx, pkt, 67, peer); !ok {
			b.Fatal("no offer")
		}
	}
}
