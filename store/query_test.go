package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/node"
)

// inventorySpec is node i of a generated inventory: racks of 40, a GPU label on every
// seventh, a static address on every third, servers on every fiftieth.
func inventorySpec(i int) node.Node {
	n := workerSpec(fmt.Sprintf("n-%05d", i), coreMAC(i+1))
	if i%50 == 0 {
		n.Role = node.RoleServer
	}
	n.Labels = map[string]string{"rack": fmt.Sprintf("r%d", i/40)}
	if i%7 == 0 {
		n.Labels["gpu"] = "a100"
	}
	if i%3 == 0 {
		n.IP = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 16)
	}
	return n
}

// fillInventory imports count nodes in one bulk import and moves some of them on: every
// fifth provisioning, every eleventh of those failed.
func fillInventory(t testing.TB, s *Store, count int) {
	t.Helper()
	ctx := context.Background()
	rows := make([]ImportRow, count)
	for i := range rows {
		rows[i] = ImportRow{Line: i + 2, Node: inventorySpec(i)}
	}
	if _, err := s.ImportNodes(ctx, rows, ImportOptions{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < count; i += 5 {
		_, err := s.UpdateNode(ctx, inventorySpec(i).Name, func(n *node.Node) ([]node.Event, error) {
			to := node.StateProvisioning
			ev, err := n.Transition(to, "test", "test", time.Now())
			if err != nil || i%11 != 0 {
				return []node.Event{ev}, err
			}
			ev2, err := n.Transition(node.StateFailed, "test", "test", time.Now())
			return []node.Event{ev, ev2}, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// TestQueryNodes_PagesAgreeWithFilteringEverything walks every page of each query, in
// both directions and several page sizes, and compares the names with a filter of the
// whole inventory: each index path (name, prefix, state, role, label value, label key,
// IP, MAC, full scan) must return exactly the matches, in order, once each.
func TestQueryNodes_PagesAgreeWithFilteringEverything(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	const count = 400
	fillInventory(t, s, count)
	all, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    NodeQuery
	}{
		{"everything", NodeQuery{}},
		{"all but one state", NodeQuery{NotState: node.StateRegistered}},
		{"all but one state, with a label", NodeQuery{NotState: node.StateRegistered, Selector: mustSelector(t, "rack=r1")}},
		{"name prefix", NodeQuery{NamePrefix: "n-001"}},
		{"state", NodeQuery{State: node.StateProvisioning}},
		{"state with no nodes", NodeQuery{State: node.StateActive}},
		{"role", NodeQuery{Role: node.RoleServer}},
		{"label value", NodeQuery{Selector: mustSelector(t, "rack=r3")}},
		{"label value and key", NodeQuery{Selector: mustSelector(t, "rack=r3,gpu")}},
		{"label key", NodeQuery{Selector: mustSelector(t, "gpu")}},
		{"label set", NodeQuery{Selector: mustSelector(t, "rack in (r1,r2)")}},
		{"negative selector only", NodeQuery{Selector: mustSelector(t, "!gpu,rack!=r0")}},
		{"one absent key", NodeQuery{Selector: mustSelector(t, "!gpu")}},
		{"a set left out", NodeQuery{Selector: mustSelector(t, "rack notin (r0,r2,r9)")}},
		{"terms that exclude the same nodes", NodeQuery{Selector: mustSelector(t, "rack!=r1,rack notin (r1,r2),gpu!=a100")}},
		{"a key no node has, left out", NodeQuery{Selector: mustSelector(t, "!tpu")}},
		{"negative terms, not one state", NodeQuery{NotState: node.StateRegistered, Selector: mustSelector(t, "!gpu,rack!=r3")}},
		{"negative terms, one state", NodeQuery{State: node.StateProvisioning, Selector: mustSelector(t, "!gpu")}},
		{"negative terms, a role", NodeQuery{Role: node.RoleServer, Selector: mustSelector(t, "rack!=r0")}},
		{"negative and positive terms", NodeQuery{Selector: mustSelector(t, "gpu=a100,rack notin (r1)")}},
		{"negative terms and a name prefix", NodeQuery{NamePrefix: "n-002", Selector: mustSelector(t, "!gpu")}},
		{"a key, and a value left out", NodeQuery{Selector: mustSelector(t, "gpu,rack!=r4")}},
		{"state and label", NodeQuery{State: node.StateFailed, Selector: mustSelector(t, "rack=r0")}},
		{"role and prefix", NodeQuery{Role: node.RoleWorker, NamePrefix: "n-002"}},
		{"IP", NodeQuery{IP: netip.MustParseAddr("10.1.0.30")}},
		{"MAC", NodeQuery{MAC: coreMAC(8)}},
		{"MAC and a filter it fails", NodeQuery{MAC: coreMAC(8), Role: node.RoleServer}},
		{"sorted by state", NodeQuery{Sort: "state"}},
		{"sorted by state, one state", NodeQuery{Sort: "state", State: node.StateFailed}},
		{"sorted by state, with a label", NodeQuery{Sort: "state", Selector: mustSelector(t, "gpu")}},
	}
	for _, tt := range tests {
		var want []string
		for _, n := range all {
			if tt.q.Matches(&n) {
				want = append(want, n.Name)
			}
		}
		if tt.q.Sort == "state" {
			byState := func(a, b string) int {
				na, nb := findNode(all, a), findNode(all, b)
				return strings.Compare(string(na.State)+"\x00"+na.Name, string(nb.State)+"\x00"+nb.Name)
			}
			slices.SortFunc(want, byState)
		}
		for _, desc := range []bool{false, true} {
			for _, limit := range []int{1, 7, 100, 1000} {
				t.Run(fmt.Sprintf("%s/desc=%v/limit=%d", tt.name, desc, limit), func(t *testing.T) {
					q := tt.q
					q.Desc, q.Limit = desc, limit
					var got []string
					pages := 0
					for {
						page, err := s.QueryNodes(ctx, q)
						if err != nil {
							t.Fatal(err)
						}
						if page.Total != len(want) {
							t.Fatalf("page %d: total %d, want %d", pages, page.Total, len(want))
						}
						if len(page.Nodes) > limit {
							t.Fatalf("page %d has %d nodes, over the limit %d", pages, len(page.Nodes), limit)
						}
						for _, n := range page.Nodes {
							got = append(got, n.Name)
						}
						pages++
						if page.Continue == "" {
							break
						}
						if len(page.Nodes) == 0 {
							t.Fatal("an empty page with a continue token")
						}
						q.Continue = page.Continue
					}
					w := slices.Clone(want)
					if desc {
						slices.Reverse(w)
					}
					if !slices.Equal(got, w) {
						t.Fatalf("got %d names %.5q…, want %d %.5q…", len(got), got, len(w), w)
					}
				})
			}
		}
	}
	closeAndCheck(t, s)
}

func findNode(all []node.Node, name string) node.Node {
	i := slices.IndexFunc(all, func(n node.Node) bool { return n.Name == name })
	return all[i]
}

func TestQueryNodes_RefusesForeignContinueTokensAndUnknownSorts(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	fillInventory(t, s, 10)
	first, err := s.QueryNodes(ctx, NodeQuery{Limit: 2})
	if err != nil || first.Continue == "" {
		t.Fatalf("first page: %v, continue %q", err, first.Continue)
	}
	for _, q := range []NodeQuery{
		{Continue: "not base64!"},
		{Continue: first.Continue, Sort: "state"},
		{Continue: first.Continue, Desc: true},
		{Sort: "age"},
	} {
		if _, err := s.QueryNodes(ctx, q); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("QueryNodes(%+v) = %v, want ErrInvalid", q, err)
		}
	}
}

func TestQueryNodes_ContinueSurvivesTheLastNodeOfAPageBeingDeleted(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	fillInventory(t, s, 10)
	for _, desc := range []bool{false, true} {
		first, err := s.QueryNodes(ctx, NodeQuery{Limit: 3, Desc: desc, Role: node.RoleWorker})
		if err != nil {
			t.Fatal(err)
		}
		last := first.Nodes[len(first.Nodes)-1].Name
		if err := s.RemoveNode(ctx, last); err != nil {
			t.Fatal(err)
		}
		next, err := s.QueryNodes(ctx, NodeQuery{Limit: 3, Desc: desc, Role: node.RoleWorker, Continue: first.Continue})
		if err != nil {
			t.Fatal(err)
		}
		if len(next.Nodes) == 0 || (next.Nodes[0].Name < last) == !desc {
			t.Fatalf("desc=%v: after removing %s the next page starts at %v", desc, last, next.Nodes)
		}
	}
	closeAndCheck(t, s)
}

// TestQueryNodesJSON_ItemsAreTheNodesAsTheAPIEncodesThem checks the premise of the list
// API's fast path: a stored node's bytes are exactly what encoding the node gives, so
// sending them on without decoding changes nothing a client sees. It also checks that the
// raw path and the names-only one page and count as the decoding one does.
func TestQueryNodesJSON_ItemsAreTheNodesAsTheAPIEncodesThem(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	fillInventory(t, s, 120)
	for _, q := range []NodeQuery{
		{Limit: 50},
		{Limit: 7, Selector: mustSelector(t, "gpu=a100")},
		{Limit: 9, Sort: "state", Desc: true, Selector: mustSelector(t, "!gpu")},
		{MAC: coreMAC(8)},
	} {
		for pages := 0; ; pages++ {
			decoded, err := s.QueryNodes(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.QueryNodesJSON(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if raw.Continue != decoded.Continue || raw.Total != decoded.Total || len(raw.Items) != len(decoded.Nodes) {
				t.Fatalf("%+v page %d: raw continue %q total %d items %d; decoded %q %d %d", q, pages,
					raw.Continue, raw.Total, len(raw.Items), decoded.Continue, decoded.Total, len(decoded.Nodes))
			}
			names, err := s.QueryNodeNames(ctx, q)
			if err != nil || names.Continue != decoded.Continue || names.Total != decoded.Total || len(names.Names) != len(decoded.Nodes) {
				t.Fatalf("%+v page %d: names %+v (%v)", q, pages, names, err)
			}
			for i, n := range decoded.Nodes {
				if names.Names[i] != n.Name {
					t.Fatalf("name %d: %s, want %s", i, names.Names[i], n.Name)
				}
				want, err := json.Marshal(n)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw.Items[i], want) {
					t.Fatalf("node %s: stored\n%s\nencoded\n%s", n.Name, raw.Items[i], want)
				}
			}
			if raw.Continue == "" {
				break
			}
			q.Continue = raw.Continue
		}
	}
	closeAndCheck(t, s)
}
