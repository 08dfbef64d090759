package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func testEventBounds(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{MaxNodeEvents: 5})
	mustImport(t, s, worker("w-1", MAC(1)))
	for i := range 8 {
		if err := s.AppendEvents(ctx, node.NewEvent("w-1", node.EventLog, fmt.Sprintf("line %d", i), "agent", time.Now().UTC())); err != nil {
			t.Fatal(err)
		}
	}
	events, err := s.Events(ctx, "w-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for i, e := range events {
		reasons = append(reasons, e.Reason)
		if i > 0 && e.Seq <= events[i-1].Seq {
			t.Errorf("event sequence not increasing: %d after %d", e.Seq, events[i-1].Seq)
		}
	}
	if want := []string{"line 3", "line 4", "line 5", "line 6", "line 7"}; !slices.Equal(reasons, want) {
		t.Errorf("kept %v, want the newest 5: %v", reasons, want)
	}
	if newest, _ := s.Events(ctx, "w-1", 2); len(newest) != 2 || newest[1].Reason != "line 7" {
		t.Errorf("limit 2: %+v", newest)
	}
	if s.BoundStats().EventsDropped < 4 {
		t.Errorf("dropped events counted %d, want at least 4", s.BoundStats().EventsDropped)
	}
	err = s.AppendEvents(ctx, node.NewEvent("nobody", node.EventLog, "x", "agent", time.Now()))
	wantErr(t, "an event of an unknown node", err, node.ErrNotFound)
	dropped, err := s.AppendMACEvents(ctx, store.MACEvent{MAC: MAC(1), Event: node.NewEvent("", node.EventBoot, "by MAC", "ipxe", time.Now().UTC())},
		store.MACEvent{MAC: MAC(77), Event: node.NewEvent("", node.EventBoot, "nobody's", "ipxe", time.Now().UTC())})
	if err != nil || dropped != 1 {
		t.Errorf("AppendMACEvents: dropped %d, %v", dropped, err)
	}
	if last, _ := s.Events(ctx, "w-1", 1); len(last) != 1 || last[0].Reason != "by MAC" || last[0].Node != "w-1" {
		t.Errorf("the MAC's event: %+v", last)
	}
}

func testDiscovery(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	seen := node.BootInfo{Firmware: "uefi", Arch: 7, VendorClass: "PXEClient:Arch:00007"}
	if err := s.RecordBoot(ctx, MAC(1), seen); err != nil {
		t.Fatal(err)
	}
	disc, err := s.NodeByMAC(ctx, MAC(1))
	if err != nil || disc.State != node.StateDiscovered || disc.Name != node.DefaultName(MAC(1)) || disc.Boot.Firmware != "uefi" || disc.Boot.FirstSeen.IsZero() {
		t.Fatalf("discovered = %+v, %v", disc, err)
	}
	// A repeat adds what is new and keeps the rest.
	if err := s.RecordBoot(ctx, MAC(1), node.BootInfo{Firmware: "ipxe", UserClass: "iPXE"}); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.NodeByMAC(ctx, MAC(1)); again.Boot.UserClass != "iPXE" || again.Boot.VendorClass != seen.VendorClass {
		t.Errorf("merged boot record %+v", again.Boot)
	}
	err = s.RecordBoot(ctx, node.MAC{}, seen)
	wantErr(t, "a zero MAC", err, node.ErrInvalid)
	n := mustImport(t, s, worker("w-1", MAC(1)))
	if n.State != node.StateRegistered || n.Boot.Firmware != "ipxe" || !n.CreatedAt.Equal(disc.CreatedAt) {
		t.Errorf("the import did not take the discovered record over: %+v", n)
	}
	if _, err := s.GetNode(ctx, disc.Name); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("the discovered name still answers: %v", err)
	}
	if got := transitions(t, s, "w-1"); !slices.Equal(got, []string{"→discovered", "discovered→registered"}) {
		t.Errorf("history %v, want the discovery carried over", got)
	}
}

func testDiscoveryCap(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{MaxDiscovered: 3})
	mustImport(t, s, worker("kept", MAC(100)))
	base := time.Now().UTC().Add(-time.Hour)
	for i := range 5 {
		if err := s.RecordBoot(ctx, MAC(i+1), node.BootInfo{Firmware: "bios", LastSeen: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	counts, _ := s.StateCounts(ctx)
	if counts[node.StateDiscovered] != 3 || counts[node.StateRegistered] != 1 {
		t.Errorf("counts %v, want 3 discovered and the imported node", counts)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, err := s.NodeByMAC(ctx, MAC(i+1)); (err == nil) != want {
			t.Errorf("MAC %d kept = %v, want %v (the longest-unseen go first)", i+1, err == nil, want)
		}
	}
	if got := s.BoundStats().DiscoveredEvicted; got != 2 {
		t.Errorf("evictions counted %d, want 2", got)
	}
}

func testSettings(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	if c, err := s.ClusterSettings(ctx); err != nil || c.ServerURL != "" || c.Token.IsSet() {
		t.Fatalf("fresh settings %+v, %v", c, err)
	}
	c, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL = "https://10.0.0.10:6443"
		c.Token = "K10abc::server:secret"
		c.InstallEnv = map[string]string{"HTTPS_PROXY": "http://user:pw@proxy:3128"}
		c.JoinTurnMinutes = 20
		return nil
	})
	if err != nil || c.Token.Reveal() != "K10abc::server:secret" {
		t.Fatalf("update: %v", err)
	}
	got, err := s.ClusterSettings(ctx)
	if err != nil || got.ServerURL != c.ServerURL || got.Token.Reveal() != c.Token.Reveal() || got.InstallEnv["HTTPS_PROXY"] != "http://user:pw@proxy:3128" || got.JoinTurnMinutes != 20 {
		t.Errorf("read back %+v (token %q), %v", got, got.Token.Reveal(), err)
	}
	_, err = s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL = "not a url"
		return nil
	})
	if err == nil {
		t.Error("an invalid server URL was stored")
	}
	if after, _ := s.ClusterSettings(ctx); after.ServerURL != c.ServerURL {
		t.Errorf("a refused update changed the settings: %s", after.ServerURL)
	}
}

func testImages(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	disk := func(name string) store.Image {
		return store.Image{Name: name, Kind: store.ImageDisk, File: "/srv/images/" + name + ".raw", Size: 1 << 20,
			SHA256: strings.Repeat("ab", 32), Format: store.FormatRaw}
	}
	first, err := s.AddImage(ctx, disk("debian"), false)
	if err != nil || !first.Default {
		t.Fatalf("the first image is not the default: %+v, %v", first, err)
	}
	if second, err := s.AddImage(ctx, disk("ubuntu"), false); err != nil || second.Default {
		t.Fatalf("second image: %+v, %v", second, err)
	}
	_, err = s.AddImage(ctx, disk("debian"), false)
	wantErr(t, "a taken image name", err, node.ErrConflict)
	bad := disk("bad")
	bad.SHA256 = "nope"
	_, err = s.AddImage(ctx, bad, false)
	wantErr(t, "an invalid image", err, node.ErrInvalid)
	if _, err := s.AddImage(ctx, disk("rocky"), true); err != nil {
		t.Fatal(err)
	}
	all, err := s.Images(ctx)
	if err != nil || len(all) != 3 || all[0].Name != "debian" || all[0].Default || !all[1].Default {
		t.Errorf("catalog %+v, %v; want rocky the default", all, err)
	}
	img, err := s.Image(ctx, "debian")
	if err != nil || img.File != "/srv/images/debian.raw" || img.AddedAt.IsZero() {
		t.Errorf("Image = %+v, %v", img, err)
	}
	mustImport(t, s, worker("w-1", MAC(1))) // installs the default, rocky
	var inUse *store.ImageInUseError
	if err := s.RemoveImage(ctx, "rocky"); !errors.As(err, &inUse) || !slices.Equal(inUse.Nodes, []string{"w-1"}) {
		t.Errorf("removing the image a node uses: %v", err)
	}
	if err := s.RemoveImage(ctx, "debian"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Image(ctx, "debian")
	wantErr(t, "a removed image", err, node.ErrNotFound)
}

func testLeases(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	now := time.Now().UTC()
	ipA, ipB, ipC := netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101"), netip.MustParseAddr("10.0.0.102")
	if err := s.PutLeases(ctx,
		store.Lease{IP: ipA, MAC: MAC(1), State: store.LeaseActive, Expires: now.Add(time.Hour), Hostname: "alpha"},
		store.Lease{IP: ipB, MAC: MAC(2), State: store.LeaseActive, Expires: now.Add(-time.Second)},
		store.Lease{IP: ipC, State: store.LeaseDeclined, Expires: now.Add(time.Hour)},
	); err != nil {
		t.Fatal(err)
	}
	all, err := s.Leases(ctx)
	if err != nil || len(all) != 3 || all[0].IP != ipA || all[0].Hostname != "alpha" || !all[0].Expires.Equal(now.Add(time.Hour)) || all[2].State != store.LeaseDeclined {
		t.Fatalf("leases %+v, %v", all, err)
	}
	if mac, err := s.MACForIP(ctx, ipA); err != nil || mac != MAC(1) {
		t.Errorf("MACForIP(active) = %s, %v", mac, err)
	}
	_, err = s.MACForIP(ctx, ipB)
	wantErr(t, "an expired lease", err, node.ErrNotFound)
	_, err = s.MACForIP(ctx, netip.MustParseAddr("10.0.0.199"))
	wantErr(t, "an unknown address", err, node.ErrNotFound)
	if l, err := s.LeaseForMAC(ctx, MAC(1)); err != nil || l.IP != ipA {
		t.Errorf("LeaseForMAC = %+v, %v", l, err)
	}
	err = s.PutLeases(ctx, store.Lease{MAC: MAC(5), State: store.LeaseActive})
	wantErr(t, "a lease without an address", err, node.ErrInvalid)
	// The MAC moves: its old address record goes.
	if err := s.PutLeases(ctx, store.Lease{IP: ipB, MAC: MAC(1), State: store.LeaseActive, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if l, err := s.LeaseForMAC(ctx, MAC(1)); err != nil || l.IP != ipB {
		t.Errorf("after the move LeaseForMAC = %+v, %v", l, err)
	}
	if _, err := s.MACForIP(ctx, ipA); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("the old address still answers: %v", err)
	}
	if err := s.DeleteLeases(ctx, ipB, ipC); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.Leases(ctx); len(all) != 0 {
		t.Errorf("after delete: %+v", all)
	}
}

func testReservations(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	spec := worker("static", MAC(1), MAC(2))
	spec.IP = netip.MustParsePrefix("10.0.0.31/24")
	spec.Gateway = netip.MustParseAddr("10.0.0.1")
	mustImport(t, s, spec)
	mustImport(t, s, worker("dynamic", MAC(3)))
	r, err := s.Reservations(ctx)
	if err != nil || len(r) != 1 || r[0].Node != "static" || r[0].IP != spec.IP || !slices.Equal(r[0].MACs, spec.MACs) || r[0].Gateway != spec.Gateway {
		t.Fatalf("reservations %+v, %v", r, err)
	}
	if _, err := s.UpdateNode(ctx, "static", func(n *node.Node) ([]node.Event, error) {
		n.IP = netip.MustParsePrefix("10.0.0.32/24")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Reservations(ctx); len(r) != 1 || r[0].IP.Addr() != netip.MustParseAddr("10.0.0.32") {
		t.Errorf("after the address change: %+v", r)
	}
}

func testSecrets(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	if h, err := s.AdminPasswordHash(ctx); err != nil || h != nil {
		t.Errorf("fresh password hash %q, %v", h, err)
	}
	if err := s.SetAdminPasswordHash(ctx, []byte("$2a$hash")); err != nil {
		t.Fatal(err)
	}
	if h, err := s.AdminPasswordHash(ctx); err != nil || string(h) != "$2a$hash" {
		t.Errorf("password hash %q, %v", h, err)
	}
	ns, ok := s.(store.NodeSecrets)
	if !ok {
		t.Log("this backend keeps no node secrets")
		return
	}
	mustImport(t, s, worker("w-1", MAC(1)))
	if err := ns.SetNodeSecret(ctx, "w-1", "bmc-password", []byte("hunter2")); err != nil {
		t.Fatal(err)
	}
	if v, err := ns.NodeSecret(ctx, "w-1", "bmc-password"); err != nil || string(v) != "hunter2" {
		t.Errorf("node secret %q, %v", v, err)
	}
	_, err := ns.NodeSecret(ctx, "w-1", "other")
	wantErr(t, "an unset key", err, node.ErrNotFound)
	err = ns.SetNodeSecret(ctx, "nobody", "k", []byte("v"))
	wantErr(t, "a secret of an unknown node", err, node.ErrNotFound)
	if err := s.RemoveNode(ctx, "w-1"); err != nil {
		t.Fatal(err)
	}
	mustImport(t, s, worker("w-1", MAC(1)))
	_, err = ns.NodeSecret(ctx, "w-1", "bmc-password")
	wantErr(t, "a secret of a removed node's successor", err, node.ErrNotFound)
	n, _ := s.GetNode(ctx, "w-1")
	if strings.Contains(fmt.Sprintf("%+v", n), "hunter2") {
		t.Error("the node record carries the secret")
	}
}
