package node_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

var deleteTime = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

// member builds an inventory node: role, state and (when connected) Ready.
func member(name string, role node.Role, state node.State, ready bool) node.Node {
	n := validNode()
	n.Name, n.Role, n.State = name, role, state
	n.Cluster = &node.ClusterStatus{Ready: ready}
	return n
}

// find returns a pointer to the copy of name inside all, as a store would hand it.
func find(t *testing.T, all []node.Node, name string) *node.Node {
	t.Helper()
	for i := range all {
		if all[i].Name == name {
			n := cloneNode(all[i])
			return &n
		}
	}
	t.Fatalf("no node %s", name)
	return nil
}

func TestPlanDeletion_NeverInstalledNodesAreRemovedAtOnce(t *testing.T) {
	for _, state := range []node.State{node.StateDiscovered, node.StateRegistered, node.StateDeleted} {
		t.Run(string(state), func(t *testing.T) {
			all := []node.Node{
				member("s1", node.RoleServer, node.StateActive, true),
				member("w1", node.RoleWorker, state, true),
			}
			target := find(t, all, "w1")
			before := cloneNode(*target)
			plan, err := node.PlanDeletion(target, all, node.DeleteOptions{Confirm: "w1", Source: "api", Now: deleteTime})
			if err != nil {
				t.Fatal(err)
			}
			if !plan.Remove || len(plan.Events) != 0 {
				t.Fatalf("plan = %+v, want Remove and no events", plan)
			}
			if !reflect.DeepEqual(*target, before) {
				t.Fatalf("a removal changed the node: %+v", *target)
			}
		})
	}
}

func TestPlanDeletion_InstalledNodesGoThroughDeletingAndWiping(t *testing.T) {
	tests := []struct {
		name      string
		state     node.State
		connected bool
		mode      node.DeleteMode
		want      []node.State // the To of each event, in order
	}{
		{"installed, cluster connected: the integration drains it", node.StateInstalled, true, "", []node.State{node.StateDeleting}},
		{"installed, no cluster connection: straight on to the wipe", node.StateInstalled, false, "", []node.State{node.StateDeleting, node.StateWiping}},
		{"active, cluster connected", node.StateActive, true, node.DeleteUninstall, []node.State{node.StateDeleting}},
		{"active, uninstall without connection still wipes", node.StateActive, false, node.DeleteUninstall, []node.State{node.StateDeleting, node.StateWiping}},
		{"provisioning: the disk is being written", node.StateProvisioning, false, "", []node.State{node.StateDeleting, node.StateWiping}},
		{"failed: retry of a deletion", node.StateFailed, false, "", []node.State{node.StateDeleting, node.StateWiping}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := []node.Node{
				member("s1", node.RoleServer, node.StateActive, true),
				member("w1", node.RoleWorker, tt.state, true),
			}
			target := find(t, all, "w1")
			from := target.State
			plan, err := node.PlanDeletion(target, all, node.DeleteOptions{
				Confirm: "w1", Mode: tt.mode, ClusterConnected: tt.connected, Source: "cli", Now: deleteTime})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Remove {
				t.Fatal("plan removes an installed node's record")
			}
			if len(plan.Events) != len(tt.want) {
				t.Fatalf("%d events %+v, want moves to %v", len(plan.Events), plan.Events, tt.want)
			}
			for i, ev := range plan.Events {
				if ev.From != from || ev.To != tt.want[i] || ev.Node != "w1" || ev.Source != "cli" ||
					!ev.Time.Equal(deleteTime) || ev.Type != node.EventTransition || ev.Reason == "" {
					t.Fatalf("event %d = %+v, want %s → %s from cli at %v", i, ev, from, tt.want[i], deleteTime)
				}
				from = ev.To
			}
			if target.State != tt.want[len(tt.want)-1] {
				t.Fatalf("target state = %s, want %s", target.State, tt.want[len(tt.want)-1])
			}
			wantMode := tt.mode
			if wantMode == "" {
				wantMode = node.DeleteReinstall
			}
			if target.DeleteMode != wantMode {
				t.Fatalf("DeleteMode = %q, want %q", target.DeleteMode, wantMode)
			}
		})
	}
}

func TestPlanDeletion_RefusalsLeaveTheNodeUnchanged(t *testing.T) {
	threeServers := func() []node.Node {
		s1 := member("s1", node.RoleServer, node.StateActive, true)
		s1.ClusterInit = true
		return []node.Node{
			s1,
			member("s2", node.RoleServer, node.StateInstalled, true),
			member("s3", node.RoleServer, node.StateInstalled, false), // NotReady
			member("w1", node.RoleWorker, node.StateActive, true),
		}
	}
	tests := []struct {
		name    string
		all     []node.Node
		target  string
		opts    node.DeleteOptions
		wantErr error
	}{
		{"confirm is not the name", threeServers(), "w1", node.DeleteOptions{Confirm: "w2"}, node.ErrInvalid},
		{"confirm is empty", threeServers(), "w1", node.DeleteOptions{}, node.ErrInvalid},
		{"confirm differs in case", threeServers(), "w1", node.DeleteOptions{Confirm: "W1"}, node.ErrInvalid},
		{"confirm mismatch is checked even with force", threeServers(), "w1", node.DeleteOptions{Confirm: "s1", Force: true}, node.ErrInvalid},
		{"unknown delete mode", threeServers(), "w1", node.DeleteOptions{Confirm: "w1", Mode: "shred"}, node.ErrInvalid},
		{"the cluster-init node while others remain", threeServers(), "s1", node.DeleteOptions{Confirm: "s1"}, node.ErrRefused},
		{"a Ready server of three with one NotReady", threeServers(), "s2", node.DeleteOptions{Confirm: "s2"}, node.ErrRefused},
		{"the last server while a worker remains", []node.Node{
			member("s1", node.RoleServer, node.StateActive, true),
			member("w1", node.RoleWorker, node.StateActive, true),
		}, "s1", node.DeleteOptions{Confirm: "s1"}, node.ErrRefused},
		{"a node already deleting", []node.Node{member("w1", node.RoleWorker, node.StateDeleting, true)},
			"w1", node.DeleteOptions{Confirm: "w1", Force: true}, node.ErrConflict},
		{"a node already wiping", []node.Node{member("w1", node.RoleWorker, node.StateWiping, true)},
			"w1", node.DeleteOptions{Confirm: "w1", Force: true}, node.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := find(t, tt.all, tt.target)
			before := cloneNode(*target)
			tt.opts.Now = deleteTime
			plan, err := node.PlanDeletion(target, tt.all, tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("PlanDeletion = %+v, %v; want %v", plan, err, tt.wantErr)
			}
			if !reflect.DeepEqual(*target, before) {
				t.Fatalf("a refused deletion changed the node:\n got %+v\nwant %+v", *target, before)
			}
		})
	}
}

func TestPlanDeletion_ForceOverridesClusterSafetyOnly(t *testing.T) {
	s1 := member("s1", node.RoleServer, node.StateActive, true)
	s1.ClusterInit = true
	all := []node.Node{
		s1,
		member("s2", node.RoleServer, node.StateInstalled, true),
		member("s3", node.RoleServer, node.StateInstalled, false),
		member("w1", node.RoleWorker, node.StateActive, true),
	}
	for _, name := range []string{"s1", "s2"} {
		t.Run(name, func(t *testing.T) {
			target := find(t, all, name)
			plan, err := node.PlanDeletion(target, all, node.DeleteOptions{Confirm: name, Force: true, ClusterConnected: true, Now: deleteTime})
			if err != nil {
				t.Fatalf("forced deletion of %s: %v", name, err)
			}
			if target.State != node.StateDeleting || len(plan.Events) != 1 {
				t.Fatalf("state %s, events %+v; want deleting with one event", target.State, plan.Events)
			}
			if !strings.Contains(plan.Events[0].Reason, "forced") {
				t.Fatalf("reason %q does not say the deletion was forced", plan.Events[0].Reason)
			}
		})
	}
}

func TestPlanDeletion_SafeServerDeletionsPass(t *testing.T) {
	tests := []struct {
		name   string
		all    []node.Node
		target string
	}{
		{"the NotReady server of three", []node.Node{
			member("s1", node.RoleServer, node.StateActive, true),
			member("s2", node.RoleServer, node.StateActive, true),
			member("s3", node.RoleServer, node.StateInstalled, false),
		}, "s3"},
		{"a Ready server of three all Ready", []node.Node{
			member("s1", node.RoleServer, node.StateActive, true),
			member("s2", node.RoleServer, node.StateActive, true),
			member("s3", node.RoleServer, node.StateActive, true),
		}, "s2"},
		{"the cluster-init node when alone", func() []node.Node {
			s1 := member("s1", node.RoleServer, node.StateActive, true)
			s1.ClusterInit = true
			return []node.Node{s1, member("gone", node.RoleWorker, node.StateDeleted, false),
				member("new", node.RoleWorker, node.StateDiscovered, false)}
		}(), "s1"},
		{"a server when Bootyard is not connected (Cluster unknown counts as up)", func() []node.Node {
			all := []node.Node{
				member("s1", node.RoleServer, node.StateInstalled, true),
				member("s2", node.RoleServer, node.StateInstalled, true),
				member("s3", node.RoleServer, node.StateInstalled, true),
			}
			for i := range all {
				all[i].Cluster = nil
			}
			return all
		}(), "s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := find(t, tt.all, tt.target)
			if _, err := node.PlanDeletion(target, tt.all, node.DeleteOptions{Confirm: tt.target, Now: deleteTime}); err != nil {
				t.Fatalf("PlanDeletion: %v", err)
			}
			if target.State != node.StateWiping {
				t.Fatalf("state = %s, want wiping", target.State)
			}
		})
	}
}

func TestPlanDeletion_OnlyAHalfDoneDeletionKeepsItsRecordedSteps(t *testing.T) {
	done := []string{"quorum check", "cordon", "drain", "uninstall"}
	tests := []struct {
		name       string
		state      node.State
		failedFrom node.State
		connected  bool
		want       []string
	}{
		{"a deletion that stopped half-way goes on after its steps", node.StateFailed, node.StateDeleting, true, done},
		{"a failed install starts from the first step", node.StateFailed, node.StateProvisioning, true, nil},
		{"an active node starts from the first step, whatever an old record says", node.StateActive, "", true, nil},
		{"without a cluster connection nothing is resumed", node.StateFailed, node.StateDeleting, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := validNode()
			n.Role, n.State, n.FailedFrom = node.RoleWorker, tt.state, tt.failedFrom
			n.DeletionDone = append([]string(nil), done...)
			n.UninstallReport = &node.UninstallReport{ExitStatus: 0, From: "10.20.0.31", At: deleteTime}
			if _, err := node.PlanDeletion(&n, []node.Node{n}, node.DeleteOptions{Confirm: n.Name, Mode: node.DeleteUninstall,
				ClusterConnected: tt.connected, Source: "api", Now: deleteTime}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(n.DeletionDone, tt.want) {
				t.Errorf("steps done %q, want %q", n.DeletionDone, tt.want)
			}
			// The host's uninstall report goes with the recorded steps: a new deletion
			// never takes an old one's word.
			if kept := n.UninstallReport != nil; kept != (tt.want != nil) {
				t.Errorf("uninstall report kept %v, want %v", kept, tt.want != nil)
			}
		})
	}
}

func TestRecordDeletionStep_RecordsEachStepOnce(t *testing.T) {
	var n node.Node
	for _, s := range []string{"cordon", "drain", "cordon"} {
		n.RecordDeletionStep(s)
	}
	if !reflect.DeepEqual(n.DeletionDone, []string{"cordon", "drain"}) || !n.DeletionStepDone("drain") || n.DeletionStepDone("uninstall") {
		t.Errorf("steps %q", n.DeletionDone)
	}
}
