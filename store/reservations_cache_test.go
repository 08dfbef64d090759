package store

import (
	"context"
	"net/netip"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// TestReservations_CachedUntilAStaticAddressChanges: an unchanged inventory answers with
// the list it built last time (same backing array); every kind of change that moves a
// reservation (import, new IP, rename, new MAC, removal) makes the next call see it, and
// a change that does not (a boot record) keeps the cache.
func TestReservations_CachedUntilAStaticAddressChanges(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	spec := workerSpec("r1", coreMAC(1))
	spec.IP = netip.MustParsePrefix("10.9.0.1/24")
	if _, err := s.ImportNode(ctx, spec, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportNode(ctx, workerSpec("plain", coreMAC(2)), "test"); err != nil {
		t.Fatal(err)
	}
	get := func() []Reservation {
		t.Helper()
		r, err := s.Reservations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := get()
	if len(first) != 1 || first[0].Node != "r1" {
		t.Fatalf("reservations %+v", first)
	}
	same := func(a, b []Reservation) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }
	if !same(first, get()) {
		t.Fatal("an unchanged inventory rebuilt the list")
	}
	if err := s.RecordBoot(ctx, coreMAC(1), node.BootInfo{Firmware: "bios"}); err != nil {
		t.Fatal(err)
	}
	if !same(first, get()) {
		t.Fatal("a boot record rebuilt the list")
	}
	for _, tc := range []struct {
		name  string
		apply func() error
		check func([]Reservation) bool
	}{
		{"new IP", func() error {
			_, err := s.UpdateNode(ctx, "r1", func(n *node.Node) ([]node.Event, error) {
				n.IP = netip.MustParsePrefix("10.9.0.2/24")
				return nil, nil
			})
			return err
		}, func(r []Reservation) bool { return len(r) == 1 && r[0].IP.Addr().String() == "10.9.0.2" }},
		{"another MAC", func() error {
			_, err := s.UpdateNode(ctx, "r1", func(n *node.Node) ([]node.Event, error) {
				n.MACs = append(n.MACs, coreMAC(3))
				return nil, nil
			})
			return err
		}, func(r []Reservation) bool { return len(r) == 1 && len(r[0].MACs) == 2 }},
		{"rename", func() error {
			_, err := s.UpdateNode(ctx, "r1", func(n *node.Node) ([]node.Event, error) {
				n.Name = "r1-new"
				return nil, nil
			})
			return err
		}, func(r []Reservation) bool { return len(r) == 1 && r[0].Node == "r1-new" }},
		{"static address on another node", func() error {
			_, err := s.UpdateNode(ctx, "plain", func(n *node.Node) ([]node.Event, error) {
				n.IP = netip.MustParsePrefix("10.9.0.9/24")
				return nil, nil
			})
			return err
		}, func(r []Reservation) bool { return len(r) == 2 }},
		{"removal", func() error { return s.RemoveNode(ctx, "r1-new") },
			func(r []Reservation) bool { return len(r) == 1 && r[0].Node == "plain" }},
	} {
		if err := tc.apply(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := get(); !tc.check(got) {
			t.Fatalf("after %s: reservations %+v", tc.name, got)
		}
	}
	closeAndCheck(t, s)
}
