package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// nodeNames lists the names in the store, sorted.
func nodeNames(t *testing.T, s *Store) []string {
	t.Helper()
	nodes, err := s.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return names
}

// history lists a node's events as "from→to" for transitions and the type otherwise.
func history(t *testing.T, s *Store, name string) []string {
	t.Helper()
	events, err := s.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatalf("events of %s: %v", name, err)
	}
	var out []string
	for _, e := range events {
		if e.Node != name {
			t.Errorf("event %d of %s says node %q", e.Seq, name, e.Node)
		}
		if e.Type == node.EventTransition {
			out = append(out, string(e.From)+"→"+string(e.To))
		} else {
			out = append(out, string(e.Type))
		}
	}
	return out
}

// moveTo walks a node through the given states with UpdateNode, one legal move each.
func moveTo(t *testing.T, s *Store, name string, states ...node.State) node.Node {
	t.Helper()
	var n node.Node
	for _, to := range states {
		var err error
		n, err = s.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
			ev, err := n.Transition(to, "test moves it", "test", time.Now().UTC())
			return []node.Event{ev}, err
		})
		if err != nil {
			t.Fatalf("move %s to %s: %v", name, to, err)
		}
	}
	return n
}

func TestImport_RegistersTheNodeWithAnEventAndAnswersByNameAndMAC(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	n, err := s.ImportNode(ctx, serverSpec("gpu-01", coreMAC(1), coreMAC(2)), "api")
	if err != nil {
		t.Fatal(err)
	}
	if n.State != node.StateRegistered || n.StateSince.IsZero() || n.CreatedAt.IsZero() {
		t.Fatalf("imported node = %+v, want registered with times set", n)
	}
	for _, ref := range []string{"gpu-01", "02:b0:07:00:00:02", "02-B0-07-00-00-01", "02b0.0700.0001", "02b007000002"} {
		got, err := s.GetNode(ctx, ref)
		if err != nil || got.Name != "gpu-01" {
			t.Errorf("GetNode(%q) = %q, %v", ref, got.Name, err)
		}
	}
	events, err := s.Events(ctx, "gpu-01", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].To != node.StateRegistered || events[0].Source != "api" || events[0].Time.IsZero() {
		t.Fatalf("events = %+v, want one registration from api", events)
	}
	for _, ref := range []string{"gpu-02", "02:b0:07:00:00:03"} {
		if _, err := s.GetNode(ctx, ref); !errors.Is(err, node.ErrNotFound) {
			t.Errorf("GetNode(%q) = %v, want ErrNotFound", ref, err)
		}
	}
	closeAndCheck(t, s)
}

// A name made of twelve hex digits is a valid RFC 1123 label, and it also parses as a
// bare MAC: looking it up must still find the node by name.
func TestGetNode_FindsANodeWhoseNameLooksLikeAMAC(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	for i, name := range []string{"c0ffee000001", "123456789012"} {
		if _, err := s.ImportNode(ctx, workerSpec(name, coreMAC(i+1)), "api"); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetNode(ctx, name)
		if err != nil || got.Name != name {
			t.Errorf("GetNode(%q) = %q, %v; want the node of that name", name, got.Name, err)
		}
	}
	closeAndCheck(t, s)
}

func TestImport_AMACOrNameCannotBeClaimedTwice(t *testing.T) {
	tests := []struct {
		name string
		spec node.Node
	}{
		{"same MAC, another name", workerSpec("w2", coreMAC(1))},
		{"same MAC in another form of the spec", workerSpec("w2", coreMAC(9), coreMAC(2))},
		{"same name, another MAC", workerSpec("w1", coreMAC(9))},
		{"same name and MAC", workerSpec("w1", coreMAC(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			first, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1), coreMAC(2)), "api")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ImportNode(ctx, tt.spec, "api"); !errors.Is(err, node.ErrConflict) {
				t.Fatalf("second import = %v, want ErrConflict", err)
			}
			if names := nodeNames(t, s); !slices.Equal(names, []string{"w1"}) {
				t.Fatalf("nodes after the refused import = %v, want [w1]", names)
			}
			if _, err := s.NodeByMAC(ctx, coreMAC(9)); !errors.Is(err, node.ErrNotFound) {
				t.Fatalf("the refused import's MAC is indexed: %v", err)
			}
			got, _ := s.GetNode(ctx, "w1")
			if !slices.Equal(got.MACs, first.MACs) || len(history(t, s, "w1")) != 1 {
				t.Fatalf("the refused import changed w1: %+v", got)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestImport_InvalidSpecIsRefusedWithNothingWritten(t *testing.T) {
	tests := []struct {
		name string
		spec node.Node
	}{
		{"no name", workerSpec("", coreMAC(1))},
		{"name not a label", workerSpec("GPU_01", coreMAC(1))},
		{"no MAC", workerSpec("w1")},
		{"same MAC twice", workerSpec("w1", coreMAC(1), coreMAC(1))},
		{"no role", node.Node{Name: "w1", MACs: []node.MAC{coreMAC(1)}}},
		{"bad taint", func() node.Node {
			n := workerSpec("w1", coreMAC(1))
			n.Taints = []node.Taint{{Key: "gpu"}}
			return n
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t, tempStorePath(t))
			if _, err := s.ImportNode(context.Background(), tt.spec, "api"); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ImportNode = %v, want ErrInvalid", err)
			}
			if names := nodeNames(t, s); len(names) != 0 {
				t.Fatalf("nodes after a refused import: %v", names)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestImport_SameMACUnderConcurrencyIsClaimedOnce(t *testing.T) {
	const importers = 50
	tests := []struct {
		name      string
		spec      func(i int) node.Node
		successes int
	}{
		{"same MAC, different names", func(i int) node.Node { return workerSpec(fmt.Sprintf("w%02d", i), coreMAC(1)) }, 1},
		{"same name, different MACs", func(i int) node.Node { return workerSpec("w", coreMAC(i)) }, 1},
		{"overlapping MAC sets", func(i int) node.Node {
			return workerSpec(fmt.Sprintf("w%02d", i), coreMAC(1000+i), coreMAC(2000+i/2))
		}, importers / 2},
		{"distinct names and MACs", func(i int) node.Node { return workerSpec(fmt.Sprintf("w%02d", i), coreMAC(i)) }, importers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t, tempStorePath(t))
			start := make(chan struct{})
			errs := make([]error, importers)
			var wg sync.WaitGroup
			for i := range importers {
				wg.Go(func() {
					<-start
					_, errs[i] = s.ImportNode(context.Background(), tt.spec(i), "api")
				})
			}
			close(start)
			wg.Wait()

			succeeded := 0
			for i, err := range errs {
				switch {
				case err == nil:
					succeeded++
				case !errors.Is(err, node.ErrConflict):
					t.Errorf("importer %d: %v, want nil or ErrConflict", i, err)
				}
			}
			if succeeded != tt.successes {
				t.Fatalf("%d imports succeeded, want %d", succeeded, tt.successes)
			}
			if names := nodeNames(t, s); len(names) != tt.successes {
				t.Fatalf("%d nodes stored, want %d", len(names), tt.successes)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestImport_DiscoveredMACBecomesRegisteredAndKeepsItsHistory(t *testing.T) {
	boot := node.BootInfo{Arch: 7, Firmware: "uefi", VendorClass: "PXEClient:Arch:00007:UNDI:003016"}
	discovered := node.DefaultName(coreMAC(1))
	tests := []struct {
		name     string
		spec     node.Node
		wantMACs []node.MAC
	}{
		{"under the default name", workerSpec(discovered, coreMAC(1)), []node.MAC{coreMAC(1)}},
		{"under a new name", workerSpec("gpu-01", coreMAC(1)), []node.MAC{coreMAC(1)}},
		{"with a second, new MAC first", workerSpec("gpu-01", coreMAC(2), coreMAC(1)), []node.MAC{coreMAC(2), coreMAC(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			if err := s.RecordBoot(ctx, coreMAC(1), boot); err != nil {
				t.Fatal(err)
			}
			before, err := s.NodeByMAC(ctx, coreMAC(1))
			if err != nil || before.State != node.StateDiscovered {
				t.Fatalf("after RecordBoot: %+v, %v; want a discovered node", before, err)
			}

			n, err := s.ImportNode(ctx, tt.spec, "api")
			if err != nil {
				t.Fatal(err)
			}
			if n.State != node.StateRegistered || n.Role != node.RoleWorker || n.Boot.Firmware != "uefi" ||
				!n.CreatedAt.Equal(before.CreatedAt) || !slices.Equal(n.MACs, tt.wantMACs) {
				t.Fatalf("imported = %+v", n)
			}
			if got := history(t, s, tt.spec.Name); !slices.Equal(got, []string{"→discovered", "discovered→registered"}) {
				t.Fatalf("history = %v, want the discovery then the import", got)
			}
			if names := nodeNames(t, s); !slices.Equal(names, []string{tt.spec.Name}) {
				t.Fatalf("nodes = %v, want only %s", names, tt.spec.Name)
			}
			for _, m := range tt.wantMACs {
				if got, err := s.NodeByMAC(ctx, m); err != nil || got.Name != tt.spec.Name {
					t.Fatalf("NodeByMAC(%s) = %q, %v", m, got.Name, err)
				}
			}
			closeAndCheck(t, s)
		})
	}
}

func TestImport_MACsOfTwoDiscoveredNodesInOneSpecConflict(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	for _, m := range []node.MAC{coreMAC(1), coreMAC(2)} {
		if err := s.RecordBoot(ctx, m, node.BootInfo{Firmware: "bios"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ImportNode(ctx, workerSpec("gpu-01", coreMAC(1), coreMAC(2)), "api"); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("ImportNode = %v, want ErrConflict", err)
	}
	for _, m := range []node.MAC{coreMAC(1), coreMAC(2)} {
		if n, err := s.NodeByMAC(ctx, m); err != nil || n.State != node.StateDiscovered {
			t.Fatalf("NodeByMAC(%s) = %+v, %v; want still discovered", m, n, err)
		}
	}
	closeAndCheck(t, s)
}

func TestImport_DeletedNodeCanBeReimported(t *testing.T) {
	tests := []struct {
		name      string
		spec      node.Node
		wantMACs  []node.MAC
		keepsHist bool
	}{
		{"same name and MAC", workerSpec("w1", coreMAC(2)), []node.MAC{coreMAC(2)}, true},
		{"same MAC, new name", workerSpec("w1-new", coreMAC(2)), []node.MAC{coreMAC(2)}, true},
		{"same name, new MAC", workerSpec("w1", coreMAC(3)), []node.MAC{coreMAC(3), coreMAC(2)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			if _, err := s.ImportNode(ctx, serverSpec("s1", coreMAC(1)), "api"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(2)), "api"); err != nil {
				t.Fatal(err)
			}
			moveTo(t, s, "w1", node.StateProvisioning, node.StateInstalled)
			if _, removed, err := s.DeleteNode(ctx, "w1", node.DeleteOptions{Confirm: "w1", Source: "api"}); err != nil || removed {
				t.Fatalf("DeleteNode = removed %v, %v", removed, err)
			}
			deleted := moveTo(t, s, "w1", node.StateDeleted)
			oldHistory := history(t, s, "w1")

			n, err := s.ImportNode(ctx, tt.spec, "api")
			if err != nil {
				t.Fatalf("re-import: %v", err)
			}
			if n.State != node.StateRegistered || n.Generation != deleted.Generation || !slices.Equal(n.MACs, tt.wantMACs) {
				t.Fatalf("re-imported = %+v", n)
			}
			want := append(slices.Clone(oldHistory), "deleted→registered")
			if got := history(t, s, tt.spec.Name); !slices.Equal(got, want) {
				t.Fatalf("history = %v, want %v", got, want)
			}
			if names := nodeNames(t, s); !slices.Equal(names, []string{"s1", tt.spec.Name}) && !slices.Equal(names, []string{tt.spec.Name, "s1"}) {
				t.Fatalf("nodes = %v", names)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestImport_FirstServerIsClusterInitAndTheSecondIsNot(t *testing.T) {
	ctx := context.Background()
	path := tempStorePath(t)
	s := openTestStore(t, path)
	w, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api")
	if err != nil {
		t.Fatal(err)
	}
	s1, err := s.ImportNode(ctx, serverSpec("s1", coreMAC(2)), "api")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := s.ImportNode(ctx, serverSpec("s2", coreMAC(3)), "api")
	if err != nil {
		t.Fatal(err)
	}
	if w.ClusterInit || !s1.ClusterInit || s2.ClusterInit {
		t.Fatalf("cluster-init: w1 %v, s1 %v, s2 %v; want only s1", w.ClusterInit, s1.ClusterInit, s2.ClusterInit)
	}
	// A spec that asks for cluster-init does not get it when a server exists.
	spec := serverSpec("s3", coreMAC(4))
	spec.ClusterInit = true
	s3, err := s.ImportNode(ctx, spec, "api")
	if err != nil || s3.ClusterInit {
		t.Fatalf("s3 = cluster-init %v, %v; want false", s3.ClusterInit, err)
	}
	closeAndCheck(t, s)
	s = openTestStore(t, path)
	if got, _ := s.GetNode(ctx, "s1"); !got.ClusterInit {
		t.Fatal("cluster-init flag lost on reopen")
	}
	closeAndCheck(t, s)
}

func TestUpdateNode_MACChangeReindexes(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1), coreMAC(2)), "api"); err != nil {
		t.Fatal(err)
	}
	n, err := s.UpdateNode(ctx, "w1", func(n *node.Node) ([]node.Event, error) {
		n.MACs = []node.MAC{coreMAC(2), coreMAC(3)}
		return nil, nil
	})
	if err != nil || !slices.Equal(n.MACs, []node.MAC{coreMAC(2), coreMAC(3)}) {
		t.Fatalf("UpdateNode = %v, %v", n.MACs, err)
	}
	if _, err := s.NodeByMAC(ctx, coreMAC(1)); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("the dropped MAC still answers: %v", err)
	}
	for _, m := range []node.MAC{coreMAC(2), coreMAC(3)} {
		if got, err := s.NodeByMAC(ctx, m); err != nil || got.Name != "w1" {
			t.Fatalf("NodeByMAC(%s) = %q, %v", m, got.Name, err)
		}
	}
	// The freed MAC can be claimed by another node; the taken one cannot.
	if _, err := s.ImportNode(ctx, workerSpec("w2", coreMAC(1)), "api"); err != nil {
		t.Fatalf("import of the freed MAC: %v", err)
	}
	if _, err := s.ImportNode(ctx, workerSpec("w3", coreMAC(3)), "api"); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("import of the new MAC = %v, want ErrConflict", err)
	}
	closeAndCheck(t, s)
}

func TestUpdateNode_RefusalsWriteNothing(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      UpdateFunc
		wantErr error
	}{
		{"MAC of another node", func(n *node.Node) ([]node.Event, error) {
			n.MACs = append(n.MACs, coreMAC(9))
			n.Labels = map[string]string{"changed": "yes"}
			return []node.Event{node.NewEvent(n.Name, node.EventLog, "should not be written", "test", time.Now())}, nil
		}, node.ErrConflict},
		{"rename to a taken name", func(n *node.Node) ([]node.Event, error) {
			n.Name = "other"
			return nil, nil
		}, node.ErrConflict},
		{"the update func fails after changing everything", func(n *node.Node) ([]node.Event, error) {
			n.Name, n.MACs = "renamed", []node.MAC{coreMAC(7)}
			n.Labels["changed"] = "yes"
			if _, err := n.Transition(node.StateProvisioning, "x", "test", time.Now()); err != nil {
				return nil, err
			}
			return nil, errBoom
		}, errBoom},
		{"the result does not validate", func(n *node.Node) ([]node.Event, error) {
			n.MACs = nil
			return nil, nil
		}, node.ErrInvalid},
		{"an illegal transition", func(n *node.Node) ([]node.Event, error) {
			ev, err := n.Transition(node.StateActive, "skip ahead", "test", time.Now())
			return []node.Event{ev}, err
		}, node.ErrIllegalTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			spec := workerSpec("w1", coreMAC(1))
			spec.Labels = map[string]string{"gpu": "a100"}
			before, err := s.ImportNode(ctx, spec, "api")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ImportNode(ctx, workerSpec("other", coreMAC(9)), "api"); err != nil {
				t.Fatal(err)
			}

			if _, err := s.UpdateNode(ctx, "w1", tt.fn); !errors.Is(err, tt.wantErr) {
				t.Fatalf("UpdateNode = %v, want %v", err, tt.wantErr)
			}
			after, err := s.GetNode(ctx, "w1")
			if err != nil {
				t.Fatal(err)
			}
			if after.State != before.State || !slices.Equal(after.MACs, before.MACs) || len(after.Labels) != 1 ||
				!after.UpdatedAt.Equal(before.UpdatedAt) || after.Generation != before.Generation {
				t.Fatalf("the refused update was written:\n got %+v\nwant %+v", after, before)
			}
			if got := history(t, s, "w1"); len(got) != 1 {
				t.Fatalf("history after a refused update = %v", got)
			}
			if names := nodeNames(t, s); !slices.Equal(names, []string{"other", "w1"}) {
				t.Fatalf("nodes = %v", names)
			}
			if got, _ := s.NodeByMAC(ctx, coreMAC(9)); got.Name != "other" {
				t.Fatalf("MAC of other now answers %q", got.Name)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestUpdateNode_RenameMovesEventsAndIndexes(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1), coreMAC(2)), "api"); err != nil {
		t.Fatal(err)
	}
	moveTo(t, s, "w1", node.StateProvisioning)
	n, err := s.UpdateNode(ctx, "w1", func(n *node.Node) ([]node.Event, error) {
		n.Name = "gpu-01"
		ev, err := n.Transition(node.StateInstalled, "installed", "agent", time.Now().UTC())
		return []node.Event{ev}, err
	})
	if err != nil || n.Name != "gpu-01" || n.State != node.StateInstalled {
		t.Fatalf("rename = %+v, %v", n, err)
	}
	if _, err := s.GetNode(ctx, "w1"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("old name still answers: %v", err)
	}
	if _, err := s.Events(ctx, "w1", 0); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("events of the old name = %v, want ErrNotFound", err)
	}
	want := []string{"→registered", "registered→provisioning", "provisioning→installed"}
	if got := history(t, s, "gpu-01"); !slices.Equal(got, want) {
		t.Fatalf("history under the new name = %v, want %v", got, want)
	}
	for _, m := range []node.MAC{coreMAC(1), coreMAC(2)} {
		if got, err := s.NodeByMAC(ctx, m); err != nil || got.Name != "gpu-01" {
			t.Fatalf("NodeByMAC(%s) = %q, %v", m, got.Name, err)
		}
	}
	// The old name is free again.
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(3)), "api"); err != nil {
		t.Fatalf("import under the freed name: %v", err)
	}
	if got := history(t, s, "w1"); len(got) != 1 {
		t.Fatalf("the new w1 inherited history: %v", got)
	}
	closeAndCheck(t, s)
}

func TestUpdateNode_UnknownNodeIsNotFound(t *testing.T) {
	s := openTestStore(t, tempStorePath(t))
	called := false
	_, err := s.UpdateNode(context.Background(), "ghost", func(*node.Node) ([]node.Event, error) {
		called = true
		return nil, nil
	})
	if !errors.Is(err, node.ErrNotFound) || called {
		t.Fatalf("UpdateNode(ghost) = %v (func called %v), want ErrNotFound without calling", err, called)
	}
	closeAndCheck(t, s)
}

func TestRemoveNode_DropsIndexesAndEvents(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1), coreMAC(2)), "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportNode(ctx, workerSpec("w2", coreMAC(3)), "api"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveNode(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []node.MAC{coreMAC(1), coreMAC(2)} {
		if _, err := s.NodeByMAC(ctx, m); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("NodeByMAC(%s) after removal = %v, want ErrNotFound", m, err)
		}
	}
	if err := s.RemoveNode(ctx, "w1"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("second RemoveNode = %v, want ErrNotFound", err)
	}
	if names := nodeNames(t, s); !slices.Equal(names, []string{"w2"}) {
		t.Fatalf("nodes = %v", names)
	}
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatalf("re-import after removal: %v", err)
	}
	if got := history(t, s, "w1"); len(got) != 1 {
		t.Fatalf("history after remove and re-import = %v, want only the new import", got)
	}
	closeAndCheck(t, s)
}
