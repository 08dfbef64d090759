package node

import (
	"fmt"
	"slices"
	"time"
)

// DeleteOptions is what an operator asked for when deleting a node.
type DeleteOptions struct {
	Confirm string     // the node's name typed again
	Force   bool       // override the quorum and cluster-init refusals
	Mode    DeleteMode // reinstall (default) or uninstall
	// ClusterConnected tells whether a cluster integration will drain and remove the node;
	// without one a deletion goes straight on to the wipe.
	ClusterConnected bool
	Source           string
	Now              time.Time
}

// DeletePlan is the decision for one deletion.
type DeletePlan struct {
	// Remove means the node never started installing: drop the record, nothing to wipe.
	Remove bool
	Events []Event
}

// PlanDeletion checks a deletion of target against the rest of the inventory and, unless
// the record is simply removed, moves target on (deleting, and wiping when no cluster
// integration will do the removal). It mutates target; all is the whole inventory.
func PlanDeletion(target *Node, all []Node, opts DeleteOptions) (DeletePlan, error) {
	if opts.Confirm != target.Name {
		return DeletePlan{}, fmt.Errorf("delete %s: %w: confirm must repeat the node's name exactly (got %q)", target.Name, ErrInvalid, opts.Confirm)
	}
	switch target.State {
	case StateDiscovered, StateRegistered, StateDeleted:
		// Nothing was written to the machine's disk, or it has been wiped already.
		return DeletePlan{Remove: true}, nil
	case StateDeleting, StateWiping:
		return DeletePlan{}, fmt.Errorf("delete %s: already %s: %w", target.Name, target.State, ErrConflict)
	}
	if !opts.Force {
		if err := checkClusterSafety(target, all); err != nil {
			return DeletePlan{}, fmt.Errorf("delete %s: %w (use --force to override)", target.Name, err)
		}
	}
	mode, err := ParseDeleteMode(string(opts.Mode))
	if err != nil {
		return DeletePlan{}, err
	}
	target.DeleteMode = mode
	if target.State != StateFailed || target.FailedFrom != StateDeleting || !opts.ClusterConnected {
		// Only a deletion that stopped half-way goes on from its recorded steps; any other
		// starts from the first step.
		target.DeletionDone = nil
		target.UninstallReport = nil
	}
	reason := "deletion requested"
	if opts.Force {
		reason += " (forced)"
	}
	ev, err := target.Transition(StateDeleting, reason, opts.Source, opts.Now)
	if err != nil {
		return DeletePlan{}, err
	}
	plan := DeletePlan{Events: []Event{ev}}
	if !opts.ClusterConnected {
		next := StateWiping
		why := "no cluster connection: the next network boot wipes and reinstalls the machine"
		if mode == DeleteUninstall {
			// Without a cluster connection nothing can run the uninstall script on the host;
			// the wipe is the only way left to keep the machine from rejoining.
			why = "no cluster connection to run the uninstall script: the next network boot wipes the machine"
		}
		ev, err := target.Transition(next, why, opts.Source, opts.Now)
		if err != nil {
			return DeletePlan{}, err
		}
		plan.Events = append(plan.Events, ev)
	}
	return plan, nil
}

// checkClusterSafety refuses deletions that would break the cluster: the cluster-init
// node while others remain, or a server whose removal loses etcd quorum.
func checkClusterSafety(target *Node, all []Node) error {
	if target.Role != RoleServer {
		// Before the walk of all: a bulk delete of thousands of workers plans each one
		// against an inventory of 100,000.
		return nil
	}
	others := 0
	var members []ServerMember
	for _, n := range all {
		if n.Name != target.Name && n.State != StateDiscovered && n.State != StateDeleted {
			others++
		}
		if n.Role == RoleServer && n.State.IsMember() {
			members = append(members, ServerMember{Name: n.Name, Up: n.Cluster == nil || n.Cluster.Ready})
		}
	}
	if target.ClusterInit && others > 0 {
		return fmt.Errorf("%s is the cluster-init node and %d other nodes remain: %w", target.Name, others, ErrRefused)
	}
	workersLeft := 0
	for _, n := range all {
		if n.Name != target.Name && n.Role == RoleWorker && n.State != StateDiscovered && n.State != StateDeleted {
			workersLeft++
		}
	}
	return CheckServerRemoval(members, target.Name, workersLeft)
}

// IsMember reports whether a server in this state is an etcd member: it has an OS with
// the join data and has (or is about to have) joined.
func (s State) IsMember() bool {
	switch s {
	case StateInstalled, StateJoining, StateJoined, StateActive:
		return true
	}
	return false
}

// ServerCount counts the live server nodes (imported and not on their way out), the
// number the fault-tolerance table is about.
func ServerCount(all []Node) int {
	n := 0
	for _, nd := range all {
		if nd.Role == RoleServer && nd.State != StateDiscovered && nd.State != StateDeleting &&
			nd.State != StateWiping && nd.State != StateDeleted {
			n++
		}
	}
	return n
}

// DeletionStepDone reports whether the current deletion already finished step.
func (n *Node) DeletionStepDone(step string) bool { return slices.Contains(n.DeletionDone, step) }

// RecordDeletionStep notes that the current deletion finished step. The record is what
// makes a resumed deletion safe where a step cannot simply run again: once LLMOS is
// uninstalled the node's kubelet is gone, so neither the drain nor the uninstall pod
// could run a second time, and the next step (deleting the Node) must follow directly.
func (n *Node) RecordDeletionStep(step string) {
	if !n.DeletionStepDone(step) {
		n.DeletionDone = append(n.DeletionDone, step)
	}
}

// UninstallReport is how the uninstall script on the host says it ended: its exit status
// (0: LLMOS uninstalled and the join data removed) and the last lines of its log,
// already bounded and made printable by whoever parsed them.
type UninstallReport struct {
	ExitStatus int       `json:"exitStatus"`
	Log        []string  `json:"log,omitempty"`
	From       string    `json:"from"` // the requester's address
	At         time.Time `json:"at"`
}

// OK reports whether the uninstall succeeded.
func (r *UninstallReport) OK() bool { return r.ExitStatus == 0 }
