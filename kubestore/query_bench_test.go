package kubestore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// BenchmarkQueryNodesCache10k answers queries from a cache of 10,000 nodes (100 racks,
// a label each, 1 % provisioning), as every replica's pages and API do: a selector that
// matches 100, a state that matches 100, and the first page of everything.
func BenchmarkQueryNodesCache10k(b *testing.B) {
	s := &Store{ns: "bench", log: slog.New(slog.DiscardHandler), nodes: newNodeCache()}
	for i := range 10_000 {
		n := node.Node{Name: fmt.Sprintf("n-%05d", i), Role: node.RoleWorker, State: node.StateRegistered,
			MACs:   []node.MAC{{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}},
			Labels: map[string]string{"rack": "r" + strconv.Itoa(i%100), "zone": "z" + strconv.Itoa(i%4)}}
		if i%100 == 7 {
			n.State = node.StateProvisioning
		}
		o := s.fromNode(&n, nil)
		o.ResourceVersion = strconv.Itoa(i + 1)
		s.nodes.put(o)
	}
	rack, err := labels.Parse("rack=r42")
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name string
		q    store.NodeQuery
		want int
	}{
		{"selector", store.NodeQuery{Selector: rack}, 100},
		{"state", store.NodeQuery{State: node.StateProvisioning}, 100},
		{"all", store.NodeQuery{}, 10_000},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				page, err := s.QueryNodes(context.Background(), bm.q)
				if err != nil || page.Total != bm.want {
					b.Fatalf("total %d, %v; want %d", page.Total, err, bm.want)
				}
			}
		})
	}
}
