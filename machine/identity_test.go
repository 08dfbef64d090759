package machine

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func TestIdentity_OnlyTheNodesOwnAddressIsVerified(t *testing.T) {
	mac, other := node.MAC{0x52, 0x54, 0x00, 0x1d, 0x00, 0x01}, node.MAC{0x52, 0x54, 0x00, 0x1d, 0x00, 0x02}
	tests := []struct {
		name        string
		static      string              // the node's static IP
		leases      map[string]node.MAC // Bootyard's DHCP leases
		seen        string              // an address Bootyard's DHCP saw the node use
		trust       bool                // --trust-unverified-machines
		from        string
		want        Verdict
		wantTrusted bool
		wantWhy     string
	}{
		{name: "the node's lease", leases: map[string]node.MAC{"10.0.0.5": mac}, from: "10.0.0.5", want: Verified, wantTrusted: true, wantWhy: "DHCP lease"},
		{name: "IPv4-mapped form of the lease", leases: map[string]node.MAC{"10.0.0.5": mac}, from: "::ffff:10.0.0.5", want: Verified, wantTrusted: true},
		{name: "the node's static IP", static: "10.0.0.6/24", from: "10.0.0.6", want: Verified, wantTrusted: true, wantWhy: "static IP"},
		{name: "seen in Bootyard's DHCP", seen: "10.0.0.7", from: "10.0.0.7", want: Verified, wantTrusted: true, wantWhy: "in Bootyard's DHCP"},
		{name: "leased to another machine", leases: map[string]node.MAC{"10.0.0.8": other}, seen: "10.0.0.8", from: "10.0.0.8", want: Foreign, wantWhy: "leased to"},
		{name: "node leased elsewhere", leases: map[string]node.MAC{"10.0.0.5": mac}, from: "10.0.0.9", want: Foreign, wantWhy: "holds the lease on 10.0.0.5"},
		{name: "static IP elsewhere, no lease", static: "10.0.0.6/24", from: "10.0.0.9", want: Foreign, wantWhy: "static IP 10.0.0.6"},
		{name: "static IP elsewhere, even trusting", static: "10.0.0.6/24", trust: true, from: "10.0.0.9", want: Foreign},
		{name: "seen elsewhere only: cannot tell", seen: "10.0.0.7", from: "10.0.0.9", want: Unverified, wantWhy: "--trust-unverified-machines"},
		{name: "nothing known", from: "10.0.0.9", want: Unverified},
		{name: "nothing known, trusting", trust: true, from: "10.0.0.9", want: Unverified, wantTrusted: true},
		{name: "no address at all", from: "", want: Foreign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			ctx := context.Background()
			for ip, m := range tt.leases {
				if err := st.PutLeases(ctx, store.Lease{IP: netip.MustParseAddr(ip), MAC: m, State: store.LeaseActive, Expires: time.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			id, seen := newTestIdentity(t, st, tt.trust)
			if tt.seen != "" {
				seen.Saw(mac, netip.MustParseAddr(tt.seen))
			}
			n := node.Node{Name: "w-1", MACs: []node.MAC{mac}, State: node.StateRegistered}
			if tt.static != "" {
				n.IP = netip.MustParsePrefix(tt.static)
			}
			var from netip.Addr
			if tt.from != "" {
				from = netip.MustParseAddr(tt.from)
			}
			d, err := id.Check(ctx, n, from)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tt.want || d.Trusted != tt.wantTrusted || !strings.Contains(d.Why, tt.wantWhy) {
				t.Errorf("Check = %+v, want verdict %d trusted %v, why containing %q", d, tt.want, tt.wantTrusted, tt.wantWhy)
			}
		})
	}
}
