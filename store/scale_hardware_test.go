package store

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store/scaletest"
)

// TestScale_HardwareFilterFigures reports what a hardware filter costs: no index holds
// hardware, so it reads the document of every candidate the other filters leave. The gpu
// nodes (one in 40) are inspected with 512 GiB; alone, the filter reads every node for
// its total; beside gpu=h100 it reads only the label index's candidates.
func TestScale_HardwareFilterFigures(t *testing.T) {
	ctx := context.Background()
	n := scaletest.Nodes(t, 2000)
	s := openTestStore(t, tempStorePath(t))
	rows := make([]ImportRow, n)
	var gpuNodes []string
	for i := range rows {
		rows[i] = ImportRow{Line: i + 2, Node: scaleSpec(i)}
		if i%40 == 7 {
			gpuNodes = append(gpuNodes, rows[i].Node.Name)
		}
	}
	if _, err := s.ImportNodes(ctx, rows, ImportOptions{Source: "scale"}); err != nil {
		t.Fatal(err)
	}
	results, err := s.UpdateNodes(ctx, gpuNodes, func(nd *node.Node) ([]node.Event, error) {
		nd.Hardware = &node.Hardware{InspectedAt: time.Now().UTC(), Inventory: agentapi.Inventory{
			System: agentapi.System{Vendor: "Dell Inc.", Product: "PowerEdge XE9680"}, CPU: agentapi.CPU{Model: "Xeon Platinum 8480+"},
			MemoryBytes: 512 << 30, Disks: []agentapi.Disk{{Name: "nvme0n1", Size: 4 << 40, Serial: "S" + nd.Name}}}}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Name, r.Err)
		}
	}
	want := len(gpuNodes)
	gpu, _ := labels.Parse("gpu=h100")
	for _, f := range []struct {
		name string
		q    NodeQuery
		want int
	}{
		{"minMemory=256G alone, first 100 and the total", NodeQuery{Limit: 100, Hardware: node.HardwareFilter{MinMemory: 256 << 30}}, want},
		{"hardware=poweredge alone, first 100 and the total", NodeQuery{Limit: 100, Hardware: node.HardwareFilter{Text: "poweredge"}}, want},
		{"hardware=<one serial> alone", NodeQuery{Limit: 100, Hardware: node.HardwareFilter{Text: "S" + gpuNodes[len(gpuNodes)/2]}}, 1},
		{"minMemory=256G beside gpu=h100", NodeQuery{Limit: 100, Selector: gpu, Hardware: node.HardwareFilter{MinMemory: 256 << 30}}, want},
		{"hardware=poweredge beside a name prefix", NodeQuery{Limit: 100, NamePrefix: "dc-0000", Hardware: node.HardwareFilter{Text: "poweredge"}}, min(want, 3)},
	} {
		var total int
		p, med := scaletest.Time(50, func() {
			page, err := s.QueryNodesJSON(ctx, f.q)
			if err != nil {
				t.Fatal(err)
			}
			total = page.Total
		})
		if total != f.want {
			t.Fatalf("%s: total %d, want %d", f.name, total, f.want)
		}
		t.Logf("%s at %d nodes (%d inspected): p99 %v, median %v", f.name, n, want, p.Round(10*time.Microsecond), med.Round(10*time.Microsecond))
	}
}
