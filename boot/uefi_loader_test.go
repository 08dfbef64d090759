package boot

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
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
		// Under HTTP boot the chain is a disk image the firmware boots from a RAM disk.
		{"site shim, UEFI HTTP boot: the chain's disk image", node.LoaderShim, "", true, []dhcpv4.Modifier{http, arch(iana.EFI_X86_64_HTTP)},
			"http://10.77.0.1:8080/ipxe/shimx64-httpboot.img", true},
		{"site shim, node ipxe, UEFI HTTP boot: iPXE's URL", node.LoaderShim, node.LoaderIPXE, true, []dhcpv4.Modifier{http, arch(iana.EFI_X86_64_HTTP)},
			"http://10.77.0.1:8080/ipxe/ipxe.efi", true},
		{"default, UEFI HTTP boot: iPXE's URL", "", "", true, []dhcpv4.Modifier{http, arch(iana.EFI_X86_64_HTTP)},
			"http://10.77.0.1:8080/ipxe/ipxe.efi", true},
		{"site shim, arm64 HTTP boot: no shim", node.LoaderShim, "", true, []dhcpv4.Modifier{http, arch(iana.EFI_ARM64_HTTP)},
			"", true},
		{"site shim, BIOS: undionly.kpxe", node.LoaderShim, "", true, []dhcpv4.Modifier{pxe, arch(iana.INTEL_X86PC)}, "undionly.kpxe", true},
		{"site shim, iPXE asking: its script", node.LoaderShim, "", true, append([]dhcpv4.Modifier{
			dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))}, uefi...),
			"http://10.77.0.1:8080/boot.ipxe?mac=52:54:00:12:34:56", true},
		{"node shim but no shim served: iPXE", "", node.LoaderShim, true, uefi, "ipxe.efi", false},
		{"node shim but no shim served, UEFI HTTP boot: iPXE's URL", "", node.LoaderShim, true, []dhcpv4.Modifier{http, arch(iana.EFI_X86_64_HTTP)},
			"http://10.77.0.1:8080/ipxe/ipxe.efi", false},
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
				cfg.BootFiles.EFIx64Shim, cfg.BootFiles.EFIx64ShimHTTP = "shimx64.efi", "shimx64-httpboot.img"
			}
			cfg.Loaders = NewStoreLoaders(inv.NewNodeCache(), inv, quietLogger())
			s := socketless(t, cfg, inv)
			offer, _ := exchange(t, s, discoverFrom(t, mac, tt.mods...), 67)
			if offer == nil {
				if tt.wantFile == "" {
					return
				}
				t.Fatal("no offer")
			}
			if got := offer.BootFileNameOption(); got != tt.wantFile {
				t.Fatalf("option 67 = %q, want %q", got, tt.wantFile)
			}
			if strings.Contains(tt.wantFile, "/ipxe/") && offer.ClassIdentifier() != "HTTPClient" {
				t.Errorf("HTTP boot offer's option 60 = %q, want HTTPClient (UEFI ignores offers without it)", offer.ClassIdentifier())
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

// countingLookup counts the node reads the policy makes.
type countingLookup struct {
	NodeLookup
	reads atomic.Int64
}

func (c *countingLookup) NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, uint64, error) {
	c.reads.Add(1)
	return c.NodeLookup.NodeByMAC(ctx, mac)
}

// TestStoreLoaders_AnswersAreKeptUntilTheNodeChangesOrTheirTimeIsUp: a machine's packets
// after the first cost no store read; a change written through this server (the store's
// update hook) takes effect at the next packet, and one written elsewhere (another
// replica, no hook here) once the answer is loaderTTL old. The same for a MAC that is no
// node yet and is then imported with its own setting.
func TestStoreLoaders_AnswersAreKeptUntilTheNodeChangesOrTheirTimeIsUp(t *testing.T) {
	ctx := context.Background()
	var (
		loaders *StoreLoaders
		hookOn  atomic.Bool
	)
	hookOn.Store(true)
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: quietLogger(),
		OnUpdate: func(before, after node.Node) {
			if hookOn.Load() {
				loaders.NodeChanged(before, after)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lookup := &countingLookup{NodeLookup: st.NewNodeCache()}
	loaders = NewStoreLoaders(lookup, st, quietLogger())
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	loaders.now = func() time.Time { return now }

	known, unknown := mustMAC("52:54:00:12:34:56"), mustMAC("52:54:00:12:34:57")
	if _, err := st.ImportNode(ctx, node.Node{Name: "n-1", MACs: []node.MAC{known}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	setOwn := func(name string, l node.UEFILoader) {
		t.Helper()
		if _, err := st.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) { n.UEFILoader = l; return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name      string
		change    func()
		mac       node.MAC
		want      node.UEFILoader
		wantReads int64
	}{
		{"first packet reads the node", nil, known, node.LoaderIPXE, 1},
		{"the next packets do not", nil, known, node.LoaderIPXE, 1},
		{"a change through this server shows at once", func() { setOwn("n-1", node.LoaderShim) }, known, node.LoaderShim, 2},
		{"a change elsewhere is not seen yet", func() { hookOn.Store(false); setOwn("n-1", node.LoaderInherit) }, known, node.LoaderShim, 2},
		{"...until the answer is loaderTTL old", func() { now = now.Add(loaderTTL) }, known, node.LoaderIPXE, 3},
		{"an unknown machine gets the site's", func() { hookOn.Store(true) }, unknown, node.LoaderIPXE, 4},
		{"and is not read again", nil, unknown, node.LoaderIPXE, 4},
		{"once imported with its own setting it gets it at once", func() {
			if _, err := st.ImportNode(ctx, node.Node{Name: "n-2", MACs: []node.MAC{unknown}, Role: node.RoleWorker, UEFILoader: node.LoaderShim}, "test"); err != nil {
				t.Fatal(err)
			}
		}, unknown, node.LoaderShim, 5},
		{"the site's change is seen once its answer is loaderTTL old", func() {
			if _, err := st.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error { c.UEFILoader = node.LoaderShim; return nil }); err != nil {
				t.Fatal(err)
			}
			now = now.Add(loaderTTL / 2)
		}, known, node.LoaderIPXE, 5},
		{"...and then it is", func() { now = now.Add(loaderTTL / 2) }, known, node.LoaderShim, 6},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		if got := loaders.UEFILoader(ctx, s.mac); got != s.want {
			t.Errorf("%s: loader %q, want %q", s.name, got, s.want)
		}
		if got := lookup.reads.Load(); got != s.wantReads {
			t.Errorf("%s: %d node reads so far, want %d", s.name, got, s.wantReads)
		}
	}
}
