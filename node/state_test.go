package node_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// lifecycle is every state in the order the columns of legalMoves are written in.
var lifecycle = []node.State{
	node.StateDiscovered, node.StateRegistered, node.StateProvisioning, node.StateInstalled,
	node.StateJoining, node.StateJoined, node.StateActive, node.StateDeleting, node.StateWiping, node.StateDeleted, node.StateFailed,
}

// legalMoves is the state table as the issue describes it, written out by hand so the
// test does not trust the code's map: row = from, column = to, X = allowed.
//
//	dis reg pro ins jng jnd act dlg wip dld fai
var legalMoves = map[node.State]string{
	node.StateDiscovered:   ".X.........", // import
	node.StateRegistered:   "..X....X..X", // installer served; delete; install failed
	node.StateProvisioning: ".X.X...X..X", // done; back to registered; delete; failed
	node.StateInstalled:    "..X.XXXX..X", // reinstall; installer started; joined; Ready; delete; failed
	node.StateJoining:      "..X..XXX..X", // reinstall; joined; Ready; delete; join failed
	node.StateJoined:       "..X...XX...", // reinstall; Ready; delete
	node.StateActive:       "...X...X...", // Kubernetes Node vanished; delete
	node.StateDeleting:     "........XXX", // wipe; removed; failed
	node.StateWiping:       ".........XX", // wiped; failed
	node.StateDeleted:      ".X......X..", // re-import; wipe again
	node.StateFailed:       ".X..X..XX..", // retry install; first-boot script rerun; retry delete; retry wipe
}

func TestStates_ListsEveryStateOnceInLifecycleOrder(t *testing.T) {
	if !slices.Equal(node.States, lifecycle) {
		t.Fatalf("node.States = %v, want %v", node.States, lifecycle)
	}
	for _, s := range lifecycle {
		got, err := node.ParseState(string(s))
		if err != nil || got != s {
			t.Fatalf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := node.ParseState("Active"); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("ParseState(Active) = %v, want ErrInvalid", err)
	}
}

func TestTransition_WholeMatrixMatchesTheTable(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	before := at.Add(-time.Hour)
	for _, from := range lifecycle {
		row := legalMoves[from]
		if len(row) != len(lifecycle) {
			t.Fatalf("legalMoves[%s] has %d columns, want %d", from, len(row), len(lifecycle))
		}
		for col, to := range lifecycle {
			allowed := row[col] == 'X'
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				n := validNode()
				n.State, n.StateReason, n.StateSince, n.UpdatedAt = from, "earlier", before, before
				n.Generation = 3
				if from == node.StateFailed {
					n.FailedFrom = node.StateWiping
				}
				orig := cloneNode(n)

				if got := node.CanTransition(from, to); got != allowed {
					t.Fatalf("CanTransition(%s, %s) = %v, want %v", from, to, got, allowed)
				}
				ev, err := n.Transition(to, "because", "api", at)
				if !allowed {
					if !errors.Is(err, node.ErrIllegalTransition) {
						t.Fatalf("Transition(%s → %s) = %v, want ErrIllegalTransition", from, to, err)
					}
					if ev != (node.Event{}) {
						t.Fatalf("illegal transition returned event %+v", ev)
					}
					if !reflect.DeepEqual(n, orig) {
						t.Fatalf("illegal transition changed the node:\n got %+v\nwant %+v", n, orig)
					}
					return
				}
				if err != nil {
					t.Fatalf("Transition(%s → %s): %v", from, to, err)
				}
				wantEv := node.Event{Time: at, Node: "gpu-01", Type: node.EventTransition,
					From: from, To: to, Reason: "because", Source: "api"}
				if ev != wantEv {
					t.Fatalf("event = %+v, want %+v", ev, wantEv)
				}
				if n.State != to || n.StateReason != "because" || !n.StateSince.Equal(at) || !n.UpdatedAt.Equal(at) {
					t.Fatalf("node after transition: state %s reason %q since %v updated %v", n.State, n.StateReason, n.StateSince, n.UpdatedAt)
				}
				wantGen := 3
				if to == node.StateProvisioning {
					wantGen = 4 // a new instance-id for cloud-init
				}
				if n.Generation != wantGen {
					t.Fatalf("Generation = %d, want %d", n.Generation, wantGen)
				}
				wantFailedFrom := node.State("")
				if to == node.StateFailed {
					wantFailedFrom = from
				}
				if n.FailedFrom != wantFailedFrom {
					t.Fatalf("FailedFrom = %q, want %q", n.FailedFrom, wantFailedFrom)
				}
			})
		}
	}
}

func TestTransition_UnknownStatesAreIllegal(t *testing.T) {
	n := validNode()
	if _, err := n.Transition("exploded", "x", "api", time.Now()); !errors.Is(err, node.ErrIllegalTransition) {
		t.Fatalf("Transition to an unknown state = %v, want ErrIllegalTransition", err)
	}
	n.State = "exploded"
	if _, err := n.Transition(node.StateRegistered, "x", "api", time.Now()); !errors.Is(err, node.ErrIllegalTransition) {
		t.Fatalf("Transition from an unknown state = %v, want ErrIllegalTransition", err)
	}
}

func TestRetryState_SendsAFailedNodeBackWhereItFailed(t *testing.T) {
	tests := []struct {
		failedFrom node.State
		want       node.State
	}{
		{node.StateRegistered, node.StateRegistered},
		{node.StateProvisioning, node.StateRegistered},
		{node.StateInstalled, node.StateRegistered},
		{node.StateJoining, node.StateRegistered},
		{node.StateDeleting, node.StateDeleting},
		{node.StateWiping, node.StateWiping},
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(string(tt.failedFrom), func(t *testing.T) {
			n := validNode()
			n.State = tt.failedFrom
			if _, err := n.Transition(node.StateFailed, "disk error", "agent", at); err != nil {
				t.Fatal(err)
			}
			got, err := n.RetryState()
			if err != nil || got != tt.want {
				t.Fatalf("RetryState() after failing from %s = %q, %v; want %q", tt.failedFrom, got, err, tt.want)
			}
			if _, err := n.Transition(got, "retry", "api", at); err != nil {
				t.Fatalf("the retry state is not a legal move from failed: %v", err)
			}
		})
	}
}

func TestRetryState_OnlyFailedNodesRetry(t *testing.T) {
	for _, s := range lifecycle {
		if s == node.StateFailed {
			continue
		}
		n := validNode()
		n.State = s
		if got, err := n.RetryState(); !errors.Is(err, node.ErrIllegalTransition) {
			t.Errorf("RetryState() of a %s node = %q, %v; want ErrIllegalTransition", s, got, err)
		}
	}
}

func TestState_JoinDataAndMembershipByState(t *testing.T) {
	tests := []struct {
		state             node.State
		joinData, inClstr bool
		etcdMember        bool
	}{
		{node.StateDiscovered, false, false, false},
		{node.StateRegistered, true, false, false},
		{node.StateProvisioning, true, true, false},
		{node.StateInstalled, true, true, true},
		{node.StateJoining, true, true, true},
		{node.StateJoined, false, true, true},
		{node.StateActive, false, true, true},
		{node.StateDeleting, false, false, false},
		{node.StateWiping, false, false, false},
		{node.StateDeleted, false, false, false},
		{node.StateFailed, false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			if got := tt.state.MayReceiveJoinData(); got != tt.joinData {
				t.Errorf("MayReceiveJoinData() = %v, want %v", got, tt.joinData)
			}
			if got := tt.state.InCluster(); got != tt.inClstr {
				t.Errorf("InCluster() = %v, want %v", got, tt.inClstr)
			}
			if got := tt.state.IsMember(); got != tt.etcdMember {
				t.Errorf("IsMember() = %v, want %v", got, tt.etcdMember)
			}
		})
	}
}

// cloneNode deep-copies the fields Transition could touch through shared memory.
func cloneNode(n node.Node) node.Node {
	c := n
	c.MACs = slices.Clone(n.MACs)
	c.Taints = slices.Clone(n.Taints)
	c.DNS = slices.Clone(n.DNS)
	if n.Labels != nil {
		c.Labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			c.Labels[k] = v
		}
	}
	return c
}
