package store

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store/scaletest"
)

// scaleSpec is node i of a data-centre inventory: racks of 40, a static address each,
// and a label that one node in 40 carries (2,500 of 100,000) for the selector query.
func scaleSpec(i int) node.Node {
	n := node.Node{Name: fmt.Sprintf("dc-%06d", i), MACs: []node.MAC{coreMAC(i + 1)}, Role: node.RoleWorker,
		IP:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(16 + i>>16), byte(i >> 8), byte(i)}), 8),
		Labels: map[string]string{"rack": fmt.Sprintf("r%d", i/40), "zone": fmt.Sprintf("z%d", i%4)}}
	if i%40 == 7 {
		n.Labels["gpu"] = "h100"
	}
	if i%100 == 0 {
		n.Role = node.RoleServer
	}
	return n
}

// TestScale_StoreFigures generates the inventory in a temp store and reports the store's
// figures of issue 13's table: bulk import rate (one transaction), the first and a deep
// page of 100 by name, and a label-selector query that matches one node in 40. It
// asserts what the answers are, never how long they took.
func TestScale_StoreFigures(t *testing.T) {
	ctx := context.Background()
	n := scaletest.Nodes(t, 2000)
	s := openTestStore(t, tempStorePath(t))
	rows := make([]ImportRow, n)
	for i := range rows {
		rows[i] = ImportRow{Line: i + 2, Node: scaleSpec(i)}
	}
	start, cpu := time.Now(), scaletest.CPU()
	if _, err := s.ImportNodes(ctx, rows, ImportOptions{Source: "scale"}); err != nil {
		t.Fatal(err)
	}
	took, used := time.Since(start), scaletest.CPU()-cpu
	t.Logf("bulk import of %d nodes, one transaction: %v wall (%.0f nodes/s), %v CPU (%.0f nodes per CPU-second)",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), used.Round(time.Millisecond), float64(n)/used.Seconds())

	first, err := s.QueryNodes(ctx, NodeQuery{Limit: 100})
	if err != nil || len(first.Nodes) != 100 || first.Total != n {
		t.Fatalf("first page: %v, %d nodes, total %d", err, len(first.Nodes), first.Total)
	}
	deepAfter := NodeQuery{Sort: "name"}.ContinueToken([]byte(scaleSpec(n * 3 / 4).Name))
	deep, err := s.QueryNodes(ctx, NodeQuery{Limit: 100, Continue: deepAfter})
	if err != nil || len(deep.Nodes) != 100 || deep.Nodes[0].Name != scaleSpec(n*3/4+1).Name {
		t.Fatalf("deep page: %v, %d nodes", err, len(deep.Nodes))
	}
	sel, _ := labels.Parse("gpu=h100")
	want := 0
	for i := range n {
		if i%40 == 7 {
			want++
		}
	}
	runs := 200
	notGPU, _ := labels.Parse("!gpu")
	notRack, _ := labels.Parse("rack!=r7")
	for _, f := range []struct {
		name string
		q    NodeQuery
		walk bool
		// raw reads stored documents (QueryNodesJSON, the list API's path) instead of
		// decoded nodes (QueryNodes, the pages' path).
		raw  bool
		want int // matches, checked when walking or counting
	}{
		{name: "first page of 100 (with the total)", q: NodeQuery{Limit: 100}, want: n},
		{name: "deep page of 100 (3/4 in)", q: NodeQuery{Limit: 100, Continue: deepAfter}, want: n},
		{name: fmt.Sprintf("selector gpu=h100, first 100 of %d and the total", want), q: NodeQuery{Limit: 100, Selector: sel}, want: want},
		{name: fmt.Sprintf("selector gpu=h100, all %d in pages of 1000, decoded", want), q: NodeQuery{Limit: 1000, Selector: sel}, walk: true, want: want},
		{name: fmt.Sprintf("selector gpu=h100, all %d in pages of 1000, stored documents (the list API)", want), q: NodeQuery{Limit: 1000, Selector: sel}, walk: true, raw: true, want: want},
		{name: "selector !gpu, first 100 and the total", q: NodeQuery{Limit: 100, Selector: notGPU}, raw: true, want: n - want},
		{name: "selector rack!=r7, first 100 and the total", q: NodeQuery{Limit: 100, Selector: notRack}, raw: true, want: n - 40},
		{name: "name prefix + state + selector rack=r7,zone=z1", q: NodeQuery{Limit: 100, NamePrefix: "dc-", State: node.StateRegistered,
			Selector: labels.SelectorFromSet(labels.Set{"rack": "r7", "zone": "z1"})}, want: 10},
	} {
		got, total := 0, 0
		p, med := scaletest.Time(runs, func() {
			q := f.q
			got = 0
			for {
				var cont string
				if f.raw {
					page, err := s.QueryNodesJSON(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					got, cont, total = got+len(page.Items), page.Continue, page.Total
				} else {
					page, err := s.QueryNodes(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					got, cont, total = got+len(page.Nodes), page.Continue, page.Total
				}
				if !f.walk || cont == "" {
					return
				}
				q.Continue = cont
			}
		})
		if total != f.want || f.walk && got != f.want {
			t.Fatalf("%s: %d nodes, total %d, want %d", f.name, got, total, f.want)
		}
		t.Logf("%s at %d nodes: p99 %v, median %v", f.name, n, p.Round(10*time.Microsecond), med.Round(10*time.Microsecond))
	}
	p, med := scaletest.Time(runs, func() {
		if _, err := s.StateCounts(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("counts by state at %d nodes: p99 %v, median %v", n, p, med)
	start, cpu = time.Now(), scaletest.CPU()
	res, err := s.Reservations(ctx)
	if err != nil || len(res) != n {
		t.Fatalf("reservations: %v, %d", err, len(res))
	}
	t.Logf("DHCP reservation snapshot of %d static addresses, built: %v wall, %v CPU", n, time.Since(start).Round(time.Millisecond), (scaletest.CPU() - cpu).Round(time.Millisecond))
	p, med = scaletest.Time(runs, func() {
		if _, err := s.Reservations(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("DHCP reservation refresh with nothing changed: p99 %v, median %v", p, med)

	// A bulk label change of the gpu nodes: one transaction per node (what bulk actions
	// did) against UpdateNodes' batches.
	var gpuNodes []string
	for i := range n {
		if i%40 == 7 {
			gpuNodes = append(gpuNodes, scaleSpec(i).Name)
		}
	}
	relabel := func(v string) UpdateFunc {
		return func(nd *node.Node) ([]node.Event, error) {
			nd.Labels["row"] = v
			return []node.Event{node.NewEvent(nd.Name, node.EventLog, "bulk: labels changed", "scale", time.Now().UTC())}, nil
		}
	}
	start, cpu = time.Now(), scaletest.CPU()
	for _, name := range gpuNodes {
		if _, err := s.UpdateNode(ctx, name, relabel("a")); err != nil {
			t.Fatal(err)
		}
	}
	one, oneCPU := time.Since(start), scaletest.CPU()-cpu
	start, cpu = time.Now(), scaletest.CPU()
	results, err := s.UpdateNodes(ctx, gpuNodes, relabel("b"))
	if err != nil {
		t.Fatal(err)
	}
	batched, batchedCPU := time.Since(start), scaletest.CPU()-cpu
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Name, r.Err)
		}
	}
	if page, err := s.QueryNodes(ctx, NodeQuery{Selector: labels.SelectorFromSet(labels.Set{"row": "b"})}); err != nil || page.Total != want {
		t.Fatalf("relabelled nodes: %d, %v", page.Total, err)
	}
	t.Logf("label change of the %d gpu nodes at %d nodes: one transaction per node %v wall (%.0f nodes/s), %v CPU; UpdateNodes in batches of %d %v wall (%.0f nodes/s), %v CPU",
		want, n, one.Round(time.Millisecond), float64(want)/one.Seconds(), oneCPU.Round(time.Millisecond),
		bulkBatch, batched.Round(time.Millisecond), float64(want)/batched.Seconds(), batchedCPU.Round(time.Millisecond))
	if fi, err := os.Stat(s.Path()); err == nil {
		t.Logf("store file at %d nodes: %.1f MB", n, float64(fi.Size())/1e6)
	}
}
