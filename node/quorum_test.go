package node_test

import (
	"errors"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestQuorumFor_MatchesTheEtcdFaultToleranceTable(t *testing.T) {
	tests := []struct {
		servers, majority, tolerance int
		warns                        bool
	}{
		{0, 0, 0, true}, // no servers at all
		{1, 1, 0, false},
		{2, 2, 0, true}, // even: no better than 1
		{3, 2, 1, false},
		{4, 3, 1, true}, // even: no better than 3
		{5, 3, 2, false},
		{6, 4, 2, true},
		{7, 4, 3, false},
	}
	for _, tt := range tests {
		q := node.QuorumFor(tt.servers)
		want := node.Quorum{Servers: tt.servers, Majority: tt.majority, FailureTolerance: tt.tolerance}
		if q != want {
			t.Errorf("QuorumFor(%d) = %+v, want %+v", tt.servers, q, want)
		}
		if w := q.Warnings(); (len(w) > 0) != tt.warns {
			t.Errorf("QuorumFor(%d).Warnings() = %q, want warnings: %v", tt.servers, w, tt.warns)
		}
	}
	if q := node.QuorumFor(-1); q != (node.Quorum{}) {
		t.Errorf("QuorumFor(-1) = %+v, want the zero quorum", q)
	}
}

func TestCheckServerRemoval_RefusesLosingTheMajority(t *testing.T) {
	up := func(name string) node.ServerMember { return node.ServerMember{Name: name, Up: true} }
	down := func(name string) node.ServerMember { return node.ServerMember{Name: name, Up: false} }
	tests := []struct {
		name       string
		members    []node.ServerMember
		target     string
		otherNodes int
		refused    bool
	}{
		{"the only server of an empty cluster", []node.ServerMember{up("s1")}, "s1", 0, false},
		{"the last server while workers remain", []node.ServerMember{up("s1")}, "s1", 2, true},
		{"one of two healthy servers", []node.ServerMember{up("s1"), up("s2")}, "s1", 0, false},
		{"the healthy one of two when the other is down", []node.ServerMember{up("s1"), down("s2")}, "s1", 0, true},
		{"one of three healthy servers", []node.ServerMember{up("s1"), up("s2"), up("s3")}, "s2", 0, false},
		{"a Ready one of three with one NotReady", []node.ServerMember{up("s1"), up("s2"), down("s3")}, "s2", 0, true},
		{"the NotReady one of three", []node.ServerMember{up("s1"), up("s2"), down("s3")}, "s3", 0, false},
		{"a Ready one of five with one down", []node.ServerMember{up("s1"), up("s2"), up("s3"), up("s4"), down("s5")}, "s1", 0, false},
		{"a Ready one of five with two down", []node.ServerMember{up("s1"), up("s2"), up("s3"), down("s4"), down("s5")}, "s1", 0, true},
		{"a server that is not a member", []node.ServerMember{up("s1"), up("s2"), up("s3")}, "s9", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := node.CheckServerRemoval(tt.members, tt.target, tt.otherNodes)
			if tt.refused && !errors.Is(err, node.ErrRefused) {
				t.Fatalf("CheckServerRemoval = %v, want ErrRefused", err)
			}
			if !tt.refused && err != nil {
				t.Fatalf("CheckServerRemoval = %v, want nil", err)
			}
		})
	}
}

func TestServerCount_CountsLiveServersOnly(t *testing.T) {
	var all []node.Node
	for i, s := range lifecycle {
		n := validNode()
		n.Name = "s" + string(rune('a'+i))
		n.State = s
		all = append(all, n)
	}
	w := validNode()
	w.Name, w.Role = "worker", node.RoleWorker
	all = append(all, w)
	// registered, provisioning, installed, joining, joined, active, failed; not discovered,
	// deleting, wiping, deleted, nor the worker.
	if got := node.ServerCount(all); got != 7 {
		t.Fatalf("ServerCount = %d, want 7", got)
	}
}
