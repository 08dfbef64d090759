package store

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

func openLeaseStore(t *testing.T, path string, now time.Time) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLeases_SurviveReopenAndAnswerByIPAndMAC(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "bootyard.db")
	s := openLeaseStore(t, path, now)

	macA, macB := node.MAC{2, 0, 0, 0, 0, 0xa}, node.MAC{2, 0, 0, 0, 0, 0xb}
	ipA, ipB := netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101")
	if err := s.PutLeases(ctx,
		Lease{IP: ipA, MAC: macA, State: LeaseActive, Expires: now.Add(time.Hour), Hostname: "alpha"},
		Lease{IP: ipB, MAC: macB, State: LeaseActive, Expires: now.Add(-time.Second)},
	); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openLeaseStore(t, path, now)

	all, err := s.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].IP != ipA || all[0].Hostname != "alpha" || !all[0].Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("after reopen got %+v", all)
	}

	tests := []struct {
		name    string
		ip      netip.Addr
		wantMAC node.MAC
		wantErr error
	}{
		{"active lease answers with its MAC", ipA, macA, nil},
		{"expired lease is not found", ipB, node.MAC{}, node.ErrNotFound},
		{"unknown address is not found", netip.MustParseAddr("10.0.0.199"), node.MAC{}, node.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac, err := s.MACForIP(ctx, tt.ip)
			if !errors.Is(err, tt.wantErr) || mac != tt.wantMAC {
				t.Fatalf("MACForIP(%s) = %s, %v; want %s, %v", tt.ip, mac, err, tt.wantMAC, tt.wantErr)
			}
		})
	}
	l, err := s.LeaseForMAC(ctx, macA)
	if err != nil || l.IP != ipA {
		t.Fatalf("LeaseForMAC(a) = %+v, %v", l, err)
	}
	if _, err := s.LeaseForMAC(ctx, macB); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("LeaseForMAC(expired) err = %v, want ErrNotFound", err)
	}
}

func TestLeases_OneRecordPerMACAndPerAddress(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := openLeaseStore(t, filepath.Join(t.TempDir(), "b.db"), now)
	macA, macB := node.MAC{2, 0, 0, 0, 0, 0xa}, node.MAC{2, 0, 0, 0, 0, 0xb}
	ip1, ip2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	exp := now.Add(time.Hour)

	steps := []struct {
		name  string
		put   Lease
		want  map[netip.Addr]node.MAC // every stored record afterwards
		wantA netip.Addr              // LeaseForMAC(macA), invalid when none
	}{
		{"A takes ip1", Lease{IP: ip1, MAC: macA, State: LeaseActive, Expires: exp},
			map[netip.Addr]node.MAC{ip1: macA}, ip1},
		{"A moves to ip2: ip1 is dropped", Lease{IP: ip2, MAC: macA, State: LeaseActive, Expires: exp},
			map[netip.Addr]node.MAC{ip2: macA}, ip2},
		{"B takes ip2 over: A has no lease left", Lease{IP: ip2, MAC: macB, State: LeaseActive, Expires: exp},
			map[netip.Addr]node.MAC{ip2: macB}, netip.Addr{}},
		{"ip1 declined: a record without MAC", Lease{IP: ip1, State: LeaseDeclined, Expires: exp},
			map[netip.Addr]node.MAC{ip1: {}, ip2: macB}, netip.Addr{}},
	}
	for _, st := range steps {
		if err := s.PutLeases(ctx, st.put); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		all, err := s.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[netip.Addr]node.MAC{}
		for _, l := range all {
			got[l.IP] = l.MAC
		}
		if len(got) != len(st.want) {
			t.Fatalf("%s: records %v, want %v", st.name, got, st.want)
		}
		for ip, mac := range st.want {
			if m, ok := got[ip]; !ok || m != mac {
				t.Fatalf("%s: records %v, want %v", st.name, got, st.want)
			}
		}
		l, err := s.LeaseForMAC(ctx, macA)
		if st.wantA.IsValid() != (err == nil) || (err == nil && l.IP != st.wantA) {
			t.Fatalf("%s: LeaseForMAC(A) = %+v, %v; want %v", st.name, l, err, st.wantA)
		}
	}
	if _, err := s.MACForIP(ctx, ip1); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("declined address answers MACForIP: %v", err)
	}
	if err := s.DeleteLeases(ctx, ip2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeaseForMAC(ctx, macB); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("deleted lease still found by MAC: %v", err)
	}
}

func TestLeases_EmptyStoreAnswersNotFound(t *testing.T) {
	ctx := context.Background()
	s := openLeaseStore(t, filepath.Join(t.TempDir(), "c.db"), time.Now())
	if all, err := s.Leases(ctx); err != nil || len(all) != 0 {
		t.Fatalf("Leases = %v, %v", all, err)
	}
	if _, err := s.MACForIP(ctx, netip.MustParseAddr("10.0.0.1")); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("MACForIP err = %v", err)
	}
	if _, err := s.LeaseForMAC(ctx, node.MAC{2}); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("LeaseForMAC err = %v", err)
	}
}

func TestReservations_ListOnlyNodesWithStaticIPs(t *testing.T) {
	ctx := context.Background()
	s := openLeaseStore(t, filepath.Join(t.TempDir(), "r.db"), time.Now())
	static := node.Node{Name: "static", MACs: []node.MAC{{2, 0, 0, 0, 1, 1}, {2, 0, 0, 0, 1, 2}}, Role: node.RoleWorker,
		IP: netip.MustParsePrefix("10.0.0.31/24"), Gateway: netip.MustParseAddr("10.0.0.1"),
		DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53")}}
	dynamic := node.Node{Name: "dynamic", MACs: []node.MAC{{2, 0, 0, 0, 2, 1}}, Role: node.RoleWorker}
	for _, n := range []node.Node{static, dynamic} {
		if _, err := s.ImportNode(ctx, n, "test"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Reservations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Node != "static" || got[0].IP != static.IP || len(got[0].MACs) != 2 ||
		got[0].Gateway != static.Gateway || len(got[0].DNS) != 1 {
		t.Fatalf("Reservations = %+v", got)
	}
}
