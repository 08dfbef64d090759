// Package pivottest seeds a bbolt store with an inventory for the pivot's tests, so the
// bbolt and the Kubernetes backends' pivot tests move the same inventory.
package pivottest

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// MAC is the i-th machine's MAC.
func MAC(i int) node.MAC { return node.MAC{0x02, 0xb0, 0x07, byte(i >> 16), byte(i >> 8), byte(i)} }

// Seed builds an inventory of n imported nodes (some moved on through the lifecycle, some
// with a deletion half done), discovered machines, leases, images, secret settings and
// node secrets (a BMC password on every 25th node): one of everything an export carries.
func Seed(t *testing.T, s *store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	hints, err := node.ParseRootDiskHints("size>=100G,rotational=false")
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]store.ImportRow, n)
	for i := range rows {
		role := node.RoleWorker
		if i < 3 {
			role = node.RoleServer
		}
		rows[i] = store.ImportRow{Line: i + 1, Node: node.Node{Name: fmt.Sprintf("n%05d", i), MACs: []node.MAC{MAC(i)}, Role: role,
			Labels: map[string]string{"rack": fmt.Sprintf("r%d", i%40)}}}
		if i%10 == 0 {
			rows[i].Node.IP = netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.%d/16", 20+i>>16, i>>8&255, i&255))
		}
	}
	if _, err := s.ImportNodes(ctx, rows, store.ImportOptions{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.0.0.1:6443", node.Secret("K10join::server:s3cr3t")
		c.InstallEnv = map[string]string{"INSTALL_LLMOS_VERSION": "v1.2.3", "HTTPS_PROXY": "http://u:pw@proxy:3128"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdminPasswordHash(ctx, []byte("$2a$10$abcdefghijklmnopqrstuv")); err != nil {
		t.Fatal(err)
	}
	for _, img := range []store.Image{
		{Name: "llmos", Kind: store.ImageInstaller, Kernel: "/srv/vmlinuz", Initrd: "/srv/initrd", Cmdline: "console=ttyS0"},
		{Name: "ubuntu", Kind: store.ImageDisk, URL: "http://mirror/ubuntu.raw.zst", Format: store.FormatZstd, SHA256: strings.Repeat("ab", 32),
			RootDiskHints: hints},
	} {
		if _, err := s.AddImage(ctx, img, false); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	for i := 0; i < n; i += max(1, n/50) {
		if _, err := s.UpdateNode(ctx, fmt.Sprintf("n%05d", i), func(nd *node.Node) ([]node.Event, error) {
			var evs []node.Event
			for _, to := range []node.State{node.StateProvisioning, node.StateInstalled, node.StateActive, node.StateDeleting} {
				ev, err := nd.Transition(to, "test <&> "+string(to), "test", now)
				if err != nil {
					return nil, err
				}
				evs = append(evs, ev)
			}
			nd.DeleteMode, nd.DeletionDone = node.DeleteReinstall, []string{"cordon", "drain"}
			return evs, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var leases []store.Lease
	for i := range min(n, 1000) {
		leases = append(leases, store.Lease{IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), MAC: MAC(i), State: store.LeaseActive,
			Expires: now.Add(time.Hour), Hostname: fmt.Sprintf("n%05d", i)})
	}
	leases = append(leases, store.Lease{IP: netip.MustParseAddr("10.1.200.1"), State: store.LeaseDeclined, Expires: now.Add(time.Minute)})
	if err := s.PutLeases(ctx, leases...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 25 {
		// The BMC, root-disk hints and inspection came after the first store layout: a
		// backend that drops them fails the pivot's diff.
		if _, err := s.UpdateNode(ctx, fmt.Sprintf("n%05d", i), func(nd *node.Node) ([]node.Event, error) {
			nd.BMC = &node.BMC{Protocol: node.BMCRedfish, Address: fmt.Sprintf("10.9.%d.%d", i>>8&255, i&255), User: "admin", InsecureTLS: true, PasswordSet: true}
			nd.RootDiskHints = hints
			nd.Hardware = &node.Hardware{InspectedAt: now}
			nd.Hardware.MemoryBytes = 64 << 30
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetNodeSecret(ctx, fmt.Sprintf("n%05d", i), node.BMCPasswordKey, []byte(fmt.Sprintf("bmc-pw-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if err := s.RecordBoot(ctx, MAC(1<<20+i), node.BootInfo{Firmware: "uefi", Arch: 7, VendorClass: "PXEClient"}); err != nil {
			t.Fatal(err)
		}
	}
}

// FirstDiff names the first line two exports disagree on, for a readable failure.
func FirstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\n  source: %.600s\n  target: %.600s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(la), len(lb))
}
