package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// installServers imports one server per readiness given (s1, s2, ...; s1 is the
// cluster-init node) and moves each to installed with that Ready condition.
func installServers(t *testing.T, s *Store, ready ...bool) {
	t.Helper()
	ctx := context.Background()
	for i, r := range ready {
		name := "s" + string(rune('1'+i))
		if _, err := s.ImportNode(ctx, serverSpec(name, coreMAC(100+i)), "api"); err != nil {
			t.Fatal(err)
		}
		moveTo(t, s, name, node.StateProvisioning, node.StateInstalled)
		if _, err := s.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
			n.Cluster = &node.ClusterStatus{Ready: r}
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeleteNode_NeverInstalledNodeIsRemovedWithItsIndexesAndEvents(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Store) string // returns the node to delete
	}{
		{"registered", func(t *testing.T, s *Store) string {
			if _, err := s.ImportNode(context.Background(), workerSpec("w1", coreMAC(1), coreMAC(2)), "api"); err != nil {
				t.Fatal(err)
			}
			return "w1"
		}},
		{"discovered", func(t *testing.T, s *Store) string {
			if err := s.RecordBoot(context.Background(), coreMAC(1), node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
				t.Fatal(err)
			}
			return node.DefaultName(coreMAC(1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			installServers(t, s, true)
			name := tt.setup(t, s)
			got, removed, err := s.DeleteNode(ctx, name, node.DeleteOptions{Confirm: name, Source: "api"})
			if err != nil || !removed || got.Name != name {
				t.Fatalf("DeleteNode = %q removed %v, %v; want removed", got.Name, removed, err)
			}
			if _, err := s.GetNode(ctx, name); !errors.Is(err, node.ErrNotFound) {
				t.Fatalf("GetNode after removal = %v, want ErrNotFound", err)
			}
			if _, err := s.NodeByMAC(ctx, coreMAC(1)); !errors.Is(err, node.ErrNotFound) {
				t.Fatalf("MAC still indexed: %v", err)
			}
			if _, err := s.Events(ctx, name, 0); !errors.Is(err, node.ErrNotFound) {
				t.Fatalf("Events after removal = %v, want ErrNotFound", err)
			}
			if _, err := s.ImportNode(ctx, workerSpec(name, coreMAC(1)), "api"); err != nil {
				t.Fatalf("re-import after removal: %v", err)
			}
			if got := history(t, s, name); len(got) != 1 {
				t.Fatalf("history after re-import = %v, want only the import", got)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestDeleteNode_InstalledNodeMovesOnAndKeepsItsRecord(t *testing.T) {
	tests := []struct {
		name      string
		connected bool
		mode      node.DeleteMode
		wantState node.State
		wantTail  []string
	}{
		{"cluster connected", true, "", node.StateDeleting, []string{"installed→deleting"}},
		{"no cluster connection", false, "", node.StateWiping, []string{"installed→deleting", "deleting→wiping"}},
		{"uninstall without connection", false, node.DeleteUninstall, node.StateWiping, []string{"installed→deleting", "deleting→wiping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := tempStorePath(t)
			s := openTestStore(t, path)
			installServers(t, s, true)
			if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
				t.Fatal(err)
			}
			moveTo(t, s, "w1", node.StateProvisioning, node.StateInstalled)
			before := history(t, s, "w1")

			got, removed, err := s.DeleteNode(ctx, "w1", node.DeleteOptions{
				Confirm: "w1", Mode: tt.mode, ClusterConnected: tt.connected, Source: "cli"})
			if err != nil || removed || got.State != tt.wantState {
				t.Fatalf("DeleteNode = %s removed %v, %v; want %s", got.State, removed, err, tt.wantState)
			}
			closeAndCheck(t, s)
			s = openTestStore(t, path)

			stored, err := s.NodeByMAC(ctx, coreMAC(1))
			if err != nil || stored.Name != "w1" || stored.State != tt.wantState {
				t.Fatalf("stored = %s %s, %v", stored.Name, stored.State, err)
			}
			wantMode := tt.mode
			if wantMode == "" {
				wantMode = node.DeleteReinstall
			}
			if stored.DeleteMode != wantMode {
				t.Fatalf("DeleteMode = %q, want %q", stored.DeleteMode, wantMode)
			}
			if want := append(before, tt.wantTail...); !slices.Equal(history(t, s, "w1"), want) {
				t.Fatalf("history = %v, want %v", history(t, s, "w1"), want)
			}
			closeAndCheck(t, s)
		})
	}
}

func TestDeleteNode_RefusalsWriteNothing(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		opts    node.DeleteOptions
		wantErr error
	}{
		{"confirm is not the name", "s2", node.DeleteOptions{Confirm: "s3"}, node.ErrInvalid},
		{"a Ready server of three with one NotReady", "s2", node.DeleteOptions{Confirm: "s2"}, node.ErrRefused},
		{"the cluster-init node while others remain", "s1", node.DeleteOptions{Confirm: "s1"}, node.ErrRefused},
		{"an unknown node", "ghost", node.DeleteOptions{Confirm: "ghost"}, node.ErrNotFound},
		{"a bad delete mode", "s3", node.DeleteOptions{Confirm: "s3", Mode: "shred"}, node.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			installServers(t, s, true, true, false) // s3 is NotReady
			before, _ := s.ListNodes(ctx)
			_, _, err := s.DeleteNode(ctx, tt.target, tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DeleteNode = %v, want %v", err, tt.wantErr)
			}
			after, _ := s.ListNodes(ctx)
			for i := range before {
				if after[i].State != before[i].State || !after[i].UpdatedAt.Equal(before[i].UpdatedAt) {
					t.Fatalf("%s changed from %s to %s", before[i].Name, before[i].State, after[i].State)
				}
			}
			closeAndCheck(t, s)
		})
	}
}

func TestDeleteNode_ForceOverridesTheQuorumRefusal(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	installServers(t, s, true, true, false)
	got, removed, err := s.DeleteNode(ctx, "s2", node.DeleteOptions{Confirm: "s2", Force: true, ClusterConnected: true})
	if err != nil || removed || got.State != node.StateDeleting {
		t.Fatalf("forced DeleteNode = %s removed %v, %v", got.State, removed, err)
	}
	closeAndCheck(t, s)
}

// Each deletion alone keeps a majority of four servers with one down; both together do
// not. Planning inside the write transaction means the second one sees the first.
func TestDeleteNode_ConcurrentDeletionsCannotBothPassTheQuorumCheck(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	installServers(t, s, true, true, true, false) // s4 is NotReady
	targets := []string{"s2", "s3"}
	errs := make([]error, len(targets))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, name := range targets {
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.DeleteNode(ctx, name, node.DeleteOptions{Confirm: name, ClusterConnected: true})
		})
	}
	close(start)
	wg.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, node.ErrRefused):
			refused++
		default:
			t.Fatalf("DeleteNode: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d deletions passed and %d were refused, want one each", ok, refused)
	}
	closeAndCheck(t, s)
}
