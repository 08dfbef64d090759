package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func testImport(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	n := mustImport(t, s, server("cp-1", MAC(1), MAC(2)))
	if n.State != node.StateRegistered || n.StateSince.IsZero() || n.CreatedAt.IsZero() || !n.ClusterInit {
		t.Fatalf("imported first server = %+v, want registered, times set, cluster-init", n)
	}
	for _, ref := range []string{"cp-1", MAC(2).String()} {
		got, err := s.GetNode(ctx, ref)
		if err != nil || got.Name != "cp-1" || !slices.Equal(got.MACs, []node.MAC{MAC(1), MAC(2)}) {
			t.Errorf("GetNode(%q) = %+v, %v", ref, got, err)
		}
	}
	if got, err := s.NodeByMAC(ctx, MAC(1)); err != nil || got.Name != "cp-1" {
		t.Errorf("NodeByMAC = %q, %v", got.Name, err)
	}
	if second := mustImport(t, s, server("cp-2", MAC(3))); second.ClusterInit {
		t.Error("a second server is cluster-init too")
	}
	_, err := s.ImportNode(ctx, worker("cp-1", MAC(9)), "test")
	wantErr(t, "a taken name", err, node.ErrConflict)
	_, err = s.ImportNode(ctx, worker("w-9", MAC(2)), "test")
	wantErr(t, "a taken MAC", err, node.ErrConflict)
	_, err = s.ImportNode(ctx, node.Node{Name: "bad", MACs: []node.MAC{MAC(10)}, Role: "boss"}, "test")
	wantErr(t, "an invalid role", err, node.ErrInvalid)
	_, err = s.GetNode(ctx, "nobody")
	wantErr(t, "an unknown name", err, node.ErrNotFound)
	if got := transitions(t, s, "cp-1"); !slices.Equal(got, []string{"→registered"}) {
		t.Errorf("history %v, want the import", got)
	}
	all, err := s.ListNodes(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "cp-1" || all[1].Name != "cp-2" {
		t.Errorf("ListNodes = %v, %v", all, err)
	}
}

func testUpdate(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	mustImport(t, s, worker("w-1", MAC(1)))
	mustImport(t, s, worker("w-2", MAC(2)))
	n := Move(t, s, "w-1", node.StateProvisioning, node.StateInstalled)
	if n.State != node.StateInstalled {
		t.Fatalf("state %s", n.State)
	}
	got, err := s.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
		n.Labels = map[string]string{"rack": "r7"}
		n.IP = netip.MustParsePrefix("10.0.0.31/24")
		return nil, nil
	})
	if err != nil || got.Labels["rack"] != "r7" {
		t.Fatalf("label update: %+v, %v", got, err)
	}
	if again, _ := s.GetNode(ctx, "w-1"); again.Labels["rack"] != "r7" || again.IP != got.IP || again.State != node.StateInstalled || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("read back %+v, want the update", again)
	}
	refuse := errors.New("no")
	if _, err := s.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
		n.Labels["rack"] = "r8"
		return nil, refuse
	}); !errors.Is(err, refuse) {
		t.Errorf("fn's error: %v", err)
	}
	_, err = s.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
		n.MACs = append(n.MACs, MAC(2))
		return nil, nil
	})
	wantErr(t, "taking another node's MAC", err, node.ErrConflict)
	_, err = s.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
		n.Role = "boss"
		return nil, nil
	})
	wantErr(t, "an invalid result", err, node.ErrInvalid)
	_, err = s.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
		_, err := n.Transition(node.StateRegistered, "illegal", "test", time.Now())
		return nil, err
	})
	if err == nil {
		t.Error("an illegal transition was written")
	}
	if after, _ := s.GetNode(ctx, "w-1"); after.Labels["rack"] != "r7" || len(after.MACs) != 1 || after.Role != node.RoleWorker {
		t.Errorf("a refused update changed the node: %+v", after)
	}
	if got := transitions(t, s, "w-1"); !slices.Equal(got, []string{"→registered", "registered→provisioning", "provisioning→installed"}) {
		t.Errorf("history %v", got)
	}
	_, err = s.UpdateNode(ctx, "nobody", func(*node.Node) ([]node.Event, error) { return nil, nil })
	wantErr(t, "an unknown node", err, node.ErrNotFound)
}

// testConcurrentTransition races writers for one transition: each decides on the node
// it read, so only the first write may pass, and every other must see its result.
func testConcurrentTransition(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	mustImport(t, s, worker("w-1", MAC(1)))
	const writers = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = s.UpdateNode(ctx, "w-1", func(n *node.Node) ([]node.Event, error) {
				if n.State != node.StateRegistered {
					return nil, fmt.Errorf("writer %d: already %s: %w", i, n.State, node.ErrConflict)
				}
				n.Labels = map[string]string{"winner": fmt.Sprint(i)}
				ev, err := n.Transition(node.StateProvisioning, fmt.Sprintf("writer %d", i), "test", time.Now().UTC())
				return []node.Event{ev}, err
			})
		}()
	}
	close(start)
	wg.Wait()
	won, winner := 0, ""
	for i, err := range errs {
		if err == nil {
			won++
			winner = fmt.Sprint(i)
		} else if !errors.Is(err, node.ErrConflict) {
			t.Errorf("a loser's error is %v, want a conflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won the transition, want exactly 1", won)
	}
	n, _ := s.GetNode(ctx, "w-1")
	if n.Labels["winner"] != winner || n.State != node.StateProvisioning {
		t.Errorf("node after the race: written by writer %q, %s; want writer %s's provisioning", n.Labels["winner"], n.State, winner)
	}
	if got := transitions(t, s, "w-1"); !slices.Equal(got, []string{"→registered", "registered→provisioning"}) {
		t.Errorf("history %v, want one provisioning transition", got)
	}
}

func testDelete(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	mustImport(t, s, worker("fresh", MAC(1)))
	_, removed, err := s.DeleteNode(ctx, "fresh", node.DeleteOptions{Confirm: "fresh"})
	if err != nil || !removed {
		t.Fatalf("delete a registered node: removed %v, %v", removed, err)
	}
	_, err = s.GetNode(ctx, "fresh")
	wantErr(t, "the removed node", err, node.ErrNotFound)
	if _, err := s.NodeByMAC(ctx, MAC(1)); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("its MAC still answers: %v", err)
	}
	// The name is free again, with a fresh history.
	mustImport(t, s, worker("fresh", MAC(1)))
	if got := transitions(t, s, "fresh"); !slices.Equal(got, []string{"→registered"}) {
		t.Errorf("history of the re-imported node %v", got)
	}

	mustImport(t, s, worker("w-2", MAC(2)))
	before := Move(t, s, "w-2", node.StateProvisioning, node.StateInstalled)
	want := before
	plan, err := node.PlanDeletion(&want, []node.Node{before}, node.DeleteOptions{Confirm: "w-2", Now: time.Now().UTC()})
	if err != nil || plan.Remove {
		t.Fatalf("plan: %+v, %v", plan, err)
	}
	got, removed, err := s.DeleteNode(ctx, "w-2", node.DeleteOptions{Confirm: "w-2"})
	if err != nil || removed || got.State != want.State {
		t.Fatalf("delete an installed node: %s removed %v, %v; want %s", got.State, removed, err, want.State)
	}
	if stored, _ := s.GetNode(ctx, "w-2"); stored.State != want.State {
		t.Errorf("stored state %s, want %s", stored.State, want.State)
	}
	_, _, err = s.DeleteNode(ctx, "w-2", node.DeleteOptions{Confirm: "w-3"})
	wantErr(t, "a wrong confirmation", err, node.ErrInvalid)
	if err := s.RemoveNode(ctx, "w-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Events(ctx, "w-2", 0); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("events of a removed node: %v, want ErrNotFound", err)
	}
}

func testImportNodes(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	mustImport(t, s, worker("taken", MAC(100)))
	rows := []store.ImportRow{
		{Line: 2, Node: worker("r-1", MAC(1))},
		{Line: 3, Node: server("r-2", MAC(2))},
		{Line: 4, Node: worker("r-3", MAC(100))},
	}
	res, err := s.ImportNodes(ctx, rows, store.ImportOptions{Source: "test"})
	wantErr(t, "a row with a taken MAC", err, node.ErrConflict)
	if len(res) != 3 || res[0].Outcome != store.ImportSkipped || res[2].Outcome != store.ImportFailed {
		t.Errorf("results %+v", res)
	}
	if _, err := s.GetNode(ctx, "r-1"); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("a refused import wrote row 1: %v", err)
	}
	res, err = s.ImportNodes(ctx, rows[:2], store.ImportOptions{DryRun: true})
	if err != nil || res[0].Outcome != store.ImportCreated {
		t.Errorf("dry run: %+v, %v", res, err)
	}
	if _, err := s.GetNode(ctx, "r-1"); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("a dry run wrote: %v", err)
	}
	res, err = s.ImportNodes(ctx, rows, store.ImportOptions{ContinueOnError: true})
	wantErr(t, "continue on error still reports the row", err, node.ErrConflict)
	if res[0].Outcome != store.ImportCreated || res[1].Outcome != store.ImportCreated {
		t.Errorf("results %+v", res)
	}
	if n, err := s.GetNode(ctx, "r-2"); err != nil || !n.ClusterInit || n.State != node.StateRegistered {
		t.Errorf("r-2 = %+v, %v; want the cluster-init server", n, err)
	}
	res, err = s.ImportNodes(ctx, rows[:2], store.ImportOptions{})
	if err != nil || res[0].Outcome != store.ImportUnchanged || res[1].Outcome != store.ImportUnchanged {
		t.Errorf("the same rows again: %+v, %v; want unchanged", res, err)
	}
}

func testRename(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	mustImport(t, s, worker("old", MAC(1)))
	mustImport(t, s, worker("taken", MAC(2)))
	secrets, hasSecrets := s.(store.NodeSecrets)
	if hasSecrets {
		if err := secrets.SetNodeSecret(ctx, "old", "bmc-password", []byte("s3cret")); err != nil {
			t.Fatal(err)
		}
	}
	rename := func(to string) (node.Node, error) {
		return s.UpdateNode(ctx, "old", func(n *node.Node) ([]node.Event, error) {
			n.Name = to
			return []node.Event{node.NewEvent(n.Name, node.EventWarning, "renamed", "test", time.Now().UTC())}, nil
		})
	}
	_, err := rename("taken")
	wantErr(t, "a rename onto a taken name", err, node.ErrConflict)
	n, err := rename("new")
	if err != nil || n.Name != "new" {
		t.Fatalf("rename: %+v, %v", n, err)
	}
	if _, err := s.GetNode(ctx, "old"); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("the old name still answers: %v", err)
	}
	if got, err := s.NodeByMAC(ctx, MAC(1)); err != nil || got.Name != "new" {
		t.Errorf("NodeByMAC after the rename: %q, %v", got.Name, err)
	}
	events, err := s.Events(ctx, "new", 0)
	if err != nil || len(events) != 2 || events[0].To != node.StateRegistered || events[1].Reason != "renamed" || events[1].Node != "new" {
		t.Errorf("history after the rename: %+v, %v", events, err)
	}
	if hasSecrets {
		if v, err := secrets.NodeSecret(ctx, "new", "bmc-password"); err != nil || string(v) != "s3cret" {
			t.Errorf("the node secret after the rename: %q, %v", v, err)
		}
	}
}

// testLaterFields: the fields node.Node gained after the first store layout (BMC
// settings, root-disk hints, the UEFI loader, the Secure Boot reading, the recorded power
// reading) survive an import and an update on every backend.
func testLaterFields(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Limits{})
	hints, err := node.ParseRootDiskHints("serial=S-1,size>=100G")
	if err != nil {
		t.Fatal(err)
	}
	spec := worker("later", MAC(300))
	spec.BMC = &node.BMC{Protocol: node.BMCIPMI, Address: "10.9.0.5"}
	spec.RootDiskHints = hints
	spec.UEFILoader = node.LoaderShim
	mustImport(t, s, spec)
	on := true
	power := node.PowerReading{State: "off", Since: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Error: "timeout"}
	if _, err := s.UpdateNode(ctx, "later", func(n *node.Node) ([]node.Event, error) {
		n.SecureBoot = &on
		n.Power = &power
		// Every event type is stored (the Kubernetes store's CRD lists them).
		var evs []node.Event
		for _, typ := range []node.EventType{node.EventTransition, node.EventBoot, node.EventCloudInit, node.EventProgress,
			node.EventLog, node.EventCluster, node.EventWarning, node.EventPower} {
			evs = append(evs, node.NewEvent(n.Name, typ, "a "+string(typ)+" event", "test", time.Now().UTC()))
		}
		return evs, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetNode(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	if got.BMC == nil || *got.BMC != *spec.BMC || got.RootDiskHints.String() != hints.String() ||
		got.UEFILoader != node.LoaderShim || got.SecureBoot == nil || !*got.SecureBoot {
		t.Errorf("read back BMC %+v, hints %q, loader %q, secure boot %v; want %+v, %q, shim, true",
			got.BMC, got.RootDiskHints.String(), got.UEFILoader, got.SecureBoot, spec.BMC, hints.String())
	}
	evs, err := s.Events(ctx, "later", 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != node.EventPower {
		t.Errorf("the newest event is %q %q, want the power event", last.Type, last.Reason)
	}
	if got.Power == nil || got.Power.State != power.State || !got.Power.Since.Equal(power.Since) || got.Power.Error != power.Error {
		t.Errorf("read back power %+v, want %+v", got.Power, power)
	}
}
