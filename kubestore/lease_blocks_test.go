package kubestore

import (
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func TestLeaseRecord_RoundTripsEveryKindOfLease(t *testing.T) {
	mac, _ := node.ParseMAC("52:54:00:12:34:56")
	exp := time.Date(2026, 12, 1, 15, 4, 5, 123456789, time.UTC)
	tests := []struct {
		name string
		l    store.Lease
		line string
	}{
		{"active", store.Lease{IP: netip.MustParseAddr("10.64.1.5"), MAC: mac, State: store.LeaseActive, Expires: exp},
			"10.64.1.5 52:54:00:12:34:56 active 2026-12-01T15:04:05.123456789Z"},
		{"hostname with spaces", store.Lease{IP: netip.MustParseAddr("10.64.1.6"), MAC: mac, State: store.LeaseReleased, Expires: exp, Hostname: "my host "},
			"10.64.1.6 52:54:00:12:34:56 released 2026-12-01T15:04:05.123456789Z my host "},
		{"declined, no MAC, no expiry", store.Lease{IP: netip.MustParseAddr("10.64.1.7"), State: store.LeaseDeclined},
			"10.64.1.7 - declined -"},
		{"IPv6", store.Lease{IP: netip.MustParseAddr("fd00::5"), MAC: mac, State: store.LeaseActive, Expires: exp},
			"fd00::5 52:54:00:12:34:56 active 2026-12-01T15:04:05.123456789Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toRecord(tt.l); got != tt.line {
				t.Errorf("toRecord = %q, want %q", got, tt.line)
			}
			got, err := fromRecord(tt.line)
			if err != nil || got != tt.l {
				t.Errorf("fromRecord = %+v, %v; want %+v", got, err, tt.l)
			}
		})
	}
}

func TestLeaseRecord_RefusesMalformedLines(t *testing.T) {
	for _, line := range []string{"", "10.64.1.5", "10.64.1.5 - active", "x - active -", "10.64.1.5 nomac active -",
		"10.64.1.5 - leased -", "10.64.1.5 - active yesterday"} {
		if l, err := fromRecord(line); err == nil {
			t.Errorf("fromRecord(%q) = %+v, want an error", line, l)
		}
	}
}

// A block holds the addresses its name says and only those: its version is what guards
// them, so a record of another block's address (a hand edit) must not be believed.
func TestLeaseBlock_RefusesRecordsOutsideItsPrefix(t *testing.T) {
	p := blockOf(netip.MustParseAddr("10.64.1.70"))
	if p.String() != "10.64.1.64/26" || blockName(p) != "10.64.1.64-26" {
		t.Fatalf("block of 10.64.1.70 = %s named %s", p, blockName(p))
	}
	if got := blockName(blockOf(netip.MustParseAddr("fd00::1:5"))); got != "fd00-0000-0000-0000-0000-0000-0001-0000-122" {
		t.Errorf("IPv6 block name %s", got)
	}
	ok := &v1alpha1.BootyardLeaseBlock{ObjectMeta: metav1.ObjectMeta{Name: "10.64.1.64-26"},
		Spec: v1alpha1.BootyardLeaseBlockSpec{Prefix: "10.64.1.64/26", Leases: []string{"10.64.1.70 - declined -"}}}
	if _, leases, err := blockLeases(ok); err != nil || len(leases) != 1 {
		t.Fatalf("a valid block: %v, %v", leases, err)
	}
	for name, o := range map[string]*v1alpha1.BootyardLeaseBlock{
		"record outside": {ObjectMeta: metav1.ObjectMeta{Name: "10.64.1.64-26"},
			Spec: v1alpha1.BootyardLeaseBlockSpec{Prefix: "10.64.1.64/26", Leases: []string{"10.64.1.5 - declined -"}}},
		"name and prefix differ": {ObjectMeta: metav1.ObjectMeta{Name: "10.64.1.0-26"},
			Spec: v1alpha1.BootyardLeaseBlockSpec{Prefix: "10.64.1.64/26"}},
		"not a block": {ObjectMeta: metav1.ObjectMeta{Name: "10.64.0.0-16"},
			Spec: v1alpha1.BootyardLeaseBlockSpec{Prefix: "10.64.0.0/16"}},
	} {
		if _, _, err := blockLeases(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzLeaseRecord(f *testing.F) {
	for _, s := range []string{"10.64.1.5 52:54:00:12:34:56 active 2026-12-01T15:04:05.123456789Z host", "10.64.1.7 - declined -", "fd00::5 - released - a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, err := fromRecord(line)
		if err != nil {
			return
		}
		again, err := fromRecord(toRecord(l))
		if err != nil || again != l {
			t.Fatalf("%q parsed to %+v, which re-encodes to %q and parses to %+v, %v", line, l, toRecord(l), again, err)
		}
	})
}
