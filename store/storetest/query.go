package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// queryInventory imports 25 workers w-00..w-24 (racks r0..r2 by i%3, a static address
// for every fifth) and moves w-00..w-04 to provisioning.
func queryInventory(t *testing.T, s store.Backend) {
	t.Helper()
	for i := range 25 {
		spec := worker(fmt.Sprintf("w-%02d", i), MAC(i+1))
		spec.Labels = map[string]string{"rack": fmt.Sprintf("r%d", i%3)}
		if i%5 == 0 {
			spec.IP = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}), 24)
		}
		if i == 7 {
			spec.Labels["gpu"] = "a100"
		}
		mustImport(t, s, spec)
	}
	for i := range 5 {
		Move(t, s, fmt.Sprintf("w-%02d", i), node.StateProvisioning)
	}
}

// walk pages through q, Limit at a time, and returns every name in page order.
func walk(t *testing.T, s store.Backend, q store.NodeQuery) []string {
	t.Helper()
	var names []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging never ends")
		}
		page, err := s.QueryNodes(context.Background(), q)
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		if len(page.Nodes) > q.Limit && q.Limit > 0 {
			t.Fatalf("page of %d, limit %d", len(page.Nodes), q.Limit)
		}
		for _, n := range page.Nodes {
			names = append(names, n.Name)
		}
		if page.Continue == "" {
			return names
		}
		q.Continue = page.Continue
	}
}

func names(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("w-%02d", i))
	}
	return out
}

func testQueryPaging(t *testing.T, open Opener) {
	s := open(t, store.Limits{})
	queryInventory(t, s)
	all := names(0, 25)
	if got := walk(t, s, store.NodeQuery{Limit: 10}); !slices.Equal(got, all) {
		t.Errorf("by name: %v", got)
	}
	desc := slices.Clone(all)
	slices.Reverse(desc)
	if got := walk(t, s, store.NodeQuery{Limit: 7, Desc: true}); !slices.Equal(got, desc) {
		t.Errorf("by name, descending: %v", got)
	}
	// By state: provisioning before registered, each by name.
	if got := walk(t, s, store.NodeQuery{Limit: 4, Sort: "state"}); !slices.Equal(got, all) {
		t.Errorf("by state: %v", got)
	}
	// Descending: registered (by name, descending) before provisioning, which is the
	// reverse name order here.
	if got := walk(t, s, store.NodeQuery{Limit: 6, Sort: "state", Desc: true}); !slices.Equal(got, desc) {
		t.Errorf("by state, descending: %v", got)
	}
	// A node imported between pages after the cursor shows up; the pages before it stay.
	page, err := s.QueryNodes(context.Background(), store.NodeQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	mustImport(t, s, worker("w-99", MAC(99)))
	rest := walk(t, s, store.NodeQuery{Limit: 10, Continue: page.Continue})
	if !slices.Equal(rest, append(names(10, 25), "w-99")) {
		t.Errorf("after the first page: %v", rest)
	}
}

func testQueryFilters(t *testing.T, open Opener) {
	s := open(t, store.Limits{})
	queryInventory(t, s)
	sel := func(s string) labels.Selector { return mustParse(t, s) }
	tests := []struct {
		name string
		q    store.NodeQuery
		want []string
	}{
		{"state", store.NodeQuery{State: node.StateProvisioning}, names(0, 5)},
		{"not a state", store.NodeQuery{NotState: node.StateRegistered}, names(0, 5)},
		{"label value", store.NodeQuery{Selector: sel("rack=r2")}, []string{"w-02", "w-05", "w-08", "w-11", "w-14", "w-17", "w-20", "w-23"}},
		{"label key", store.NodeQuery{Selector: sel("gpu")}, []string{"w-07"}},
		{"label and state", store.NodeQuery{Selector: sel("rack=r0"), State: node.StateProvisioning}, []string{"w-00", "w-03"}},
		{"label inequality", store.NodeQuery{Selector: sel("rack!=r0,rack!=r1"), NamePrefix: "w-0"}, []string{"w-02", "w-05", "w-08"}},
		{"name prefix", store.NodeQuery{NamePrefix: "w-1"}, names(10, 20)},
		{"MAC", store.NodeQuery{MAC: MAC(13)}, []string{"w-12"}},
		{"unknown MAC", store.NodeQuery{MAC: MAC(999)}, nil},
		{"static IP", store.NodeQuery{IP: netip.MustParseAddr("10.0.0.25")}, []string{"w-15"}},
		{"role", store.NodeQuery{Role: node.RoleServer}, nil},
		{"label values in", store.NodeQuery{Selector: sel("rack in (r0,r2)"), NamePrefix: "w-0"}, []string{"w-00", "w-02", "w-03", "w-05", "w-06", "w-08", "w-09"}},
		{"label value and key", store.NodeQuery{Selector: sel("gpu,rack=r1")}, []string{"w-07"}},
		{"label absent", store.NodeQuery{Selector: sel("!gpu"), NamePrefix: "w-0"}, []string{"w-00", "w-01", "w-02", "w-03", "w-04", "w-05", "w-06", "w-08", "w-09"}},
		{"no such label value", store.NodeQuery{Selector: sel("rack=r9")}, nil},
		{"MAC and state", store.NodeQuery{MAC: MAC(2), State: node.StateRegistered}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.Limit = 3
			if got := walk(t, s, q); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			page, err := s.QueryNodes(context.Background(), tt.q)
			if err != nil || page.Total != len(tt.want) {
				t.Errorf("total %d, %v; want %d", page.Total, err, len(tt.want))
			}
			q.NoTotal = true
			// NoTotal may skip the count (-1); a count it gives must be right.
			if page, _ := s.QueryNodes(context.Background(), q); page.Total != -1 && page.Total != len(tt.want) {
				t.Errorf("NoTotal: total %d, want -1 or %d", page.Total, len(tt.want))
			}
		})
	}
	counts, err := s.StateCounts(context.Background())
	if err != nil || counts[node.StateProvisioning] != 5 || counts[node.StateRegistered] != 20 {
		t.Errorf("state counts %v, %v", counts, err)
	}

	quorum, err := s.QuorumNodes(context.Background())
	if err != nil || len(quorum) != 25 {
		t.Errorf("quorum view of %d nodes, %v", len(quorum), err)
	}

	// A node's new labels and state are found by the new values only, a removed node not
	// at all (the Kubernetes store's cache indexes follow every write).
	ctx := context.Background()
	if _, err := s.UpdateNode(ctx, "w-07", func(n *node.Node) ([]node.Event, error) {
		n.Labels = map[string]string{"rack": "r9"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	Move(t, s, "w-01", node.StateRegistered)
	if err := s.RemoveNode(ctx, "w-04"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sel   string
		state node.State
		want  []string
	}{
		{"rack=r9", "", []string{"w-07"}},
		{"gpu", "", nil},
		{"rack=r1", "", []string{"w-01", "w-10", "w-13", "w-16", "w-19", "w-22"}},
		{"", node.StateProvisioning, []string{"w-00", "w-02", "w-03"}},
	} {
		q := store.NodeQuery{State: tt.state}
		if tt.sel != "" {
			q.Selector = sel(tt.sel)
		}
		if got := walk(t, s, q); !slices.Equal(got, tt.want) {
			t.Errorf("after the changes, %q %q: got %v, want %v", tt.sel, tt.state, got, tt.want)
		}
	}
	counts, err = s.StateCounts(ctx)
	if err != nil || counts[node.StateProvisioning] != 3 || counts[node.StateRegistered] != 21 {
		t.Errorf("state counts after the changes %v, %v", counts, err)
	}
}

func testQueryErrors(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	queryInventory(t, s)
	page, err := s.QueryNodes(ctx, store.NodeQuery{Limit: 5})
	if err != nil || page.Continue == "" {
		t.Fatalf("first page: %v", err)
	}
	_, err = s.QueryNodes(ctx, store.NodeQuery{Limit: 5, Sort: "state", Continue: page.Continue})
	wantErr(t, "a name token on a state query", err, node.ErrInvalid)
	_, err = s.QueryNodes(ctx, store.NodeQuery{Continue: "!!not-base64"})
	wantErr(t, "a garbage token", err, node.ErrInvalid)
	_, err = s.QueryNodes(ctx, store.NodeQuery{Sort: "mac"})
	wantErr(t, "an unknown sort", err, node.ErrInvalid)
	if page, err := s.QueryNodes(ctx, store.NodeQuery{Limit: store.MaxPageLimit + 5000}); err != nil || len(page.Nodes) != 25 {
		t.Errorf("a limit past the maximum: %d nodes, %v", len(page.Nodes), err)
	}
}

// Inspect records an inspection of the named node, as an agent's report would: vendor
// and product, a Xeon, memGiB of memory and one 1 TiB disk per serial.
func Inspect(t testing.TB, s store.Backend, name, vendor, product string, memGiB int64, serials ...string) {
	t.Helper()
	hw := &node.Hardware{InspectedAt: time.Now().UTC(), Inventory: agentapi.Inventory{
		System: agentapi.System{Vendor: vendor, Product: product}, CPU: agentapi.CPU{Model: "Xeon Gold 6338"}, MemoryBytes: memGiB << 30}}
	for _, serial := range serials {
		hw.Disks = append(hw.Disks, agentapi.Disk{Name: "sd" + serial, Size: 1 << 40, Serial: serial, Model: "ST4000NM"})
	}
	SetHardware(t, s, name, hw)
}

// SetHardware makes hw the named node's latest inspection.
func SetHardware(t testing.TB, s store.Backend, name string, hw *node.Hardware) {
	t.Helper()
	if _, err := s.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
		n.Hardware = hw
		return nil, nil
	}); err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
}

// testQueryHardware checks the hardware filters, which no index holds, alone and beside
// every kind of indexed filter, with paging and totals exactly as other filters have.
func testQueryHardware(t *testing.T, open Opener) {
	s := open(t, store.Limits{})
	queryInventory(t, s)
	// Even workers from w-06 on are inspected: Dell with 256 GiB and 4 disks from w-12
	// on, else Lenovo with 32 GiB and 1 disk. w-00 (provisioning) is a Dell too.
	Inspect(t, s, "w-00", "Dell Inc.", "PowerEdge R650", 256, "a0", "b0", "c0", "d0")
	for i := 6; i < 25; i += 2 {
		name := fmt.Sprintf("w-%02d", i)
		if i >= 12 {
			Inspect(t, s, name, "Dell Inc.", "PowerEdge R650", 256, "a"+name, "b"+name, "c"+name, "d"+name)
		} else {
			Inspect(t, s, name, "LENOVO", "ThinkSystem SR630", 32, "a"+name)
		}
	}
	dells := []string{"w-00", "w-12", "w-14", "w-16", "w-18", "w-20", "w-22", "w-24"}
	sel := func(s string) labels.Selector { return mustParse(t, s) }
	tests := []struct {
		name string
		q    store.NodeQuery
		want []string
	}{
		{"memory", store.NodeQuery{Hardware: node.HardwareFilter{MinMemory: 64 << 30}}, dells},
		{"any memory means inspected", store.NodeQuery{Hardware: node.HardwareFilter{MinMemory: 1}},
			[]string{"w-00", "w-06", "w-08", "w-10", "w-12", "w-14", "w-16", "w-18", "w-20", "w-22", "w-24"}},
		{"disks", store.NodeQuery{Hardware: node.HardwareFilter{MinDisks: 4}}, dells},
		{"disks past every node", store.NodeQuery{Hardware: node.HardwareFilter{MinDisks: 5}}, nil},
		{"vendor text, any case", store.NodeQuery{Hardware: node.HardwareFilter{Text: "lenovo"}}, []string{"w-06", "w-08", "w-10"}},
		{"disk serial", store.NodeQuery{Hardware: node.HardwareFilter{Text: "cw-16"}}, []string{"w-16"}},
		{"and a state", store.NodeQuery{State: node.StateRegistered, Hardware: node.HardwareFilter{MinDisks: 4}}, dells[1:]},
		{"and not a state", store.NodeQuery{NotState: node.StateRegistered, Hardware: node.HardwareFilter{Text: "dell"}}, []string{"w-00"}},
		{"and a label value", store.NodeQuery{Selector: sel("rack=r0"), Hardware: node.HardwareFilter{Text: "dell"}}, []string{"w-00", "w-12", "w-18", "w-24"}},
		{"and a negative selector", store.NodeQuery{Selector: sel("rack!=r0"), Hardware: node.HardwareFilter{MinMemory: 64 << 30}}, []string{"w-14", "w-16", "w-20", "w-22"}},
		{"and a name prefix", store.NodeQuery{NamePrefix: "w-1", Hardware: node.HardwareFilter{MinMemory: 64 << 30}}, []string{"w-12", "w-14", "w-16", "w-18"}},
		{"and a role", store.NodeQuery{Role: node.RoleWorker, Hardware: node.HardwareFilter{Text: "lenovo"}}, []string{"w-06", "w-08", "w-10"}},
		{"and a static IP", store.NodeQuery{IP: netip.MustParseAddr("10.0.0.30"), Hardware: node.HardwareFilter{Text: "dell"}}, []string{"w-20"}},
		{"and a MAC", store.NodeQuery{MAC: MAC(17), Hardware: node.HardwareFilter{MinDisks: 4}}, []string{"w-16"}},
		{"and a MAC it excludes", store.NodeQuery{MAC: MAC(16), Hardware: node.HardwareFilter{MinDisks: 4}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sort := range []string{"name", "state"} {
				q := tt.q
				q.Limit, q.Sort = 3, sort
				// Both orders agree here: w-00, the one provisioning match, sorts first
				// by name and by state alike.
				if got := walk(t, s, q); !slices.Equal(got, tt.want) {
					t.Errorf("sort %s: got %v, want %v", sort, got, tt.want)
				}
				q.Limit = 0
				page, err := s.QueryNodes(context.Background(), q)
				if err != nil || page.Total != len(tt.want) {
					t.Errorf("sort %s: total %d, %v; want %d", sort, page.Total, err, len(tt.want))
				}
			}
			// The backend's own check of one node agrees with its query.
			for _, name := range tt.want {
				n, err := s.GetNode(context.Background(), name)
				if err != nil || !tt.q.Matches(&n) {
					t.Errorf("%s is in the answer, but Matches says no (%v)", name, err)
				}
			}
		})
	}
}
