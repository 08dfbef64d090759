package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// testBulk: the bulk forms change each named node, keep a failing node's error to that
// node, refuse a rename, and delete by name; the JSON and name queries answer what
// QueryNodes answers.
func testBulk(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	for i, name := range []string{"b-1", "b-2", "b-3"} {
		mustImport(t, s, worker(name, MAC(100+i)))
	}
	res, err := s.UpdateNodes(ctx, []string{"b-1", "missing", "b-3", "b-2"}, func(n *node.Node) ([]node.Event, error) {
		if n.Name == "b-2" {
			n.Name = "b-2-renamed"
			return nil, nil
		}
		n.Labels = map[string]string{"rack": "r9"}
		return nil, nil
	})
	if err != nil || len(res) != 4 {
		t.Fatalf("UpdateNodes: %d results, %v", len(res), err)
	}
	for _, r := range res {
		switch r.Name {
		case "b-1", "b-3":
			if r.Err != nil || r.Node.Labels["rack"] != "r9" {
				t.Errorf("%s: %+v", r.Name, r)
			}
		case "missing":
			wantErr(t, "a missing node", r.Err, node.ErrNotFound)
		case "b-2":
			wantErr(t, "a rename", r.Err, node.ErrInvalid)
		}
	}
	if n, _ := s.GetNode(ctx, "b-2"); n.Name != "b-2" || n.Labels["rack"] == "r9" {
		t.Errorf("the refused node changed: %+v", n)
	}

	q := store.NodeQuery{Selector: mustParse(t, "rack=r9")}
	page, err := s.QueryNodes(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.QueryNodesJSON(ctx, q)
	if err != nil || len(raw.Items) != len(page.Nodes) || raw.Total != page.Total {
		t.Fatalf("QueryNodesJSON: %d items total %d, %v; QueryNodes %d total %d", len(raw.Items), raw.Total, err, len(page.Nodes), page.Total)
	}
	for i, item := range raw.Items {
		var n node.Node
		if err := json.Unmarshal(item, &n); err != nil || n.Name != page.Nodes[i].Name {
			t.Errorf("item %d: %q, %v; want %s", i, n.Name, err, page.Nodes[i].Name)
		}
	}
	names, err := s.QueryNodeNames(ctx, q)
	if err != nil || !slices.Equal(names.Names, []string{"b-1", "b-3"}) || names.Total != 2 {
		t.Errorf("QueryNodeNames: %+v, %v", names, err)
	}

	res, err = s.DeleteNodes(ctx, names.Names, node.DeleteOptions{})
	if err != nil || len(res) != 2 {
		t.Fatalf("DeleteNodes: %+v, %v", res, err)
	}
	for _, r := range res {
		if r.Err != nil || !r.Removed {
			t.Errorf("delete %s: %+v", r.Name, r)
		}
		if _, err := s.GetNode(ctx, r.Name); !errors.Is(err, node.ErrNotFound) {
			t.Errorf("%s still there: %v", r.Name, err)
		}
	}
}

func mustParse(t *testing.T, s string) labels.Selector {
	t.Helper()
	l, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
