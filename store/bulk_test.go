package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// bulkInventory is a deletion's worst mix, written the same way into any store: five
// installed servers (s1 the cluster-init node, s4 not Ready), installed workers, one
// worker already deleting, and more registered workers than one bulk transaction holds.
// It returns the names to delete, servers first so that quorum refusals come into play,
// with a name no node has.
func bulkInventory(t *testing.T, s *Store) []string {
	t.Helper()
	installServers(t, s, true, true, true, false, true)
	rows := make([]ImportRow, 2*bulkBatch+30)
	for i := range rows {
		rows[i] = ImportRow{Line: i + 2, Node: workerSpec(fmt.Sprintf("w-%04d", i), coreMAC(1000+i))}
	}
	if _, err := s.ImportNodes(context.Background(), rows, ImportOptions{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		moveTo(t, s, rows[i*300].Node.Name, node.StateProvisioning, node.StateInstalled)
	}
	moveTo(t, s, "w-0001", node.StateProvisioning, node.StateInstalled, node.StateDeleting)
	names := []string{"s2", "s3", "s4", "s5", "s1", "ghost"}
	for _, r := range rows {
		names = append(names, r.Node.Name)
	}
	return names
}

// TestDeleteNodes_RefusesAndRemovesExactlyAsDeletingOneByOne runs a bulk delete in
// batched transactions on one store and DeleteNode node by node on a twin, and wants the
// same answer for every node (refused servers and all) and the same inventory after.
func TestDeleteNodes_RefusesAndRemovesExactlyAsDeletingOneByOne(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	opts := node.DeleteOptions{Source: "test", Now: now}
	bulk, single := openTestStore(t, tempStorePath(t)), openTestStore(t, tempStorePath(t))
	names := bulkInventory(t, bulk)
	bulkInventory(t, single)

	results, err := bulk.DeleteNodes(ctx, names, opts)
	if err != nil || len(results) != len(names) {
		t.Fatalf("DeleteNodes: %v, %d results for %d names", err, len(results), len(names))
	}
	refused := 0
	for i, name := range names {
		o := opts
		o.Confirm = name
		want, wantRemoved, wantErr := single.DeleteNode(ctx, name, o)
		got := results[i]
		if got.Name != name || fmt.Sprint(got.Err) != fmt.Sprint(wantErr) || got.Removed != wantRemoved ||
			(wantErr == nil && (got.Node.State != want.State || got.Node.Name != want.Name)) {
			t.Errorf("%s: bulk %+v / %v, one by one %s removed=%v / %v", name, got.Node.State, got.Err, want.State, wantRemoved, wantErr)
		}
		if errors.Is(wantErr, node.ErrRefused) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no deletion was refused: the inventory does not exercise the quorum rules")
	}
	left := func(s *Store) string {
		all, err := s.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, n := range all {
			fmt.Fprintf(&b, "%s=%s ", n.Name, n.State)
		}
		return b.String()
	}
	if a, b := left(bulk), left(single); a != b {
		t.Fatalf("inventories differ after the deletes:\nbulk   %s\nsingle %s", a, b)
	}
	closeAndCheck(t, bulk)
	closeAndCheck(t, single)
}

// TestUpdateNodes_EachNodeKeepsItsOwnErrorAndTheRestAreWritten: across several batches, a
// node the change refuses, one that would fail validation, take another's MAC or be
// renamed, and a name no node has each fail alone; every other node is changed with its
// event, and the indexes follow.
func TestUpdateNodes_EachNodeKeepsItsOwnErrorAndTheRestAreWritten(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	count := 2*bulkBatch + 30
	fillInventory(t, s, count)
	var names []string
	for i := range count {
		names = append(names, inventorySpec(i).Name)
	}
	names = append(names, "ghost")
	wantErr := map[string]error{
		"n-00007": node.ErrRefused, "n-00508": node.ErrInvalid, "n-00509": node.ErrConflict,
		"n-01000": node.ErrInvalid, "ghost": node.ErrNotFound,
	}
	results, err := s.UpdateNodes(ctx, names, func(n *node.Node) ([]node.Event, error) {
		switch n.Name {
		case "n-00007":
			return nil, fmt.Errorf("not this one: %w", node.ErrRefused)
		case "n-00508":
			n.Labels["Bad Key"] = "x"
		case "n-00509":
			n.MACs = append(n.MACs, coreMAC(1)) // n-00000's
		case "n-01000":
			n.Name = "n-renamed"
		}
		n.Labels["row"] = "b"
		return []node.Event{node.NewEvent(n.Name, node.EventLog, "bulk: labels changed", "test", time.Now().UTC())}, nil
	})
	if err != nil || len(results) != len(names) {
		t.Fatalf("UpdateNodes: %v, %d results", err, len(results))
	}
	for i, r := range results {
		if r.Name != names[i] {
			t.Fatalf("result %d is for %s, want %s", i, r.Name, names[i])
		}
		if want := wantErr[r.Name]; !errors.Is(r.Err, want) || (want == nil) != (r.Err == nil) {
			t.Errorf("%s: error %v, want %v", r.Name, r.Err, want)
		}
		if r.Err == nil && r.Node.Labels["row"] != "b" {
			t.Errorf("%s: result without the change: %v", r.Name, r.Node.Labels)
		}
	}
	page, err := s.QueryNodes(ctx, NodeQuery{Selector: mustSelector(t, "row=b"), NoTotal: false, Limit: 1})
	if err != nil || page.Total != count-4 {
		t.Fatalf("nodes labelled row=b: %d, %v; want %d", page.Total, err, count-4)
	}
	for _, name := range []string{"n-00007", "n-00508", "n-00509", "n-01000"} {
		n, err := s.GetNode(ctx, name)
		if err != nil || n.Labels["row"] != "" || len(n.MACs) != 1 {
			t.Errorf("%s was changed though its change failed: %+v %v", name, n, err)
		}
	}
	evs, err := s.Events(ctx, "n-00506", 0)
	if err != nil || !slices.ContainsFunc(evs, func(e node.Event) bool { return e.Reason == "bulk: labels changed" }) {
		t.Fatalf("n-00506's events %+v (%v) lack the bulk change's", evs, err)
	}
	closeAndCheck(t, s)
}

func TestUpdateNodes_ACancelledContextChangesNothingAndSaysSoForEveryNode(t *testing.T) {
	s := openTestStore(t, tempStorePath(t))
	fillInventory(t, s, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	names := []string{"n-00000", "n-00001"}
	results, err := s.UpdateNodes(ctx, names, func(n *node.Node) ([]node.Event, error) {
		n.Labels["row"] = "b"
		return nil, nil
	})
	if !errors.Is(err, context.Canceled) || len(results) != 2 || !errors.Is(results[1].Err, context.Canceled) {
		t.Fatalf("UpdateNodes with a cancelled context: %v, %+v", err, results)
	}
	if n, _ := s.GetNode(context.Background(), "n-00000"); n.Labels["row"] != "" {
		t.Fatal("a cancelled bulk change wrote")
	}
}

// TestUpdateNode_LabelsChangedInPlaceAreIndexed: a change function that edits n.Labels
// in place (not a copy) must still move the node's label index entries.
func TestUpdateNode_LabelsChangedInPlaceAreIndexed(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	fillInventory(t, s, 3)
	if _, err := s.UpdateNode(ctx, "n-00001", func(n *node.Node) ([]node.Event, error) {
		n.Labels["row"] = "b"
		delete(n.Labels, "rack")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]int{"row=b": 1, "rack": 2} {
		if page, err := s.QueryNodes(ctx, NodeQuery{Selector: mustSelector(t, sel)}); err != nil || page.Total != want {
			t.Errorf("%s: %d nodes (%v), want %d", sel, page.Total, err, want)
		}
	}
	closeAndCheck(t, s)
}
