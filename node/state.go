package node

import (
	"fmt"
	"time"
)

// State is where a machine is in its life with Bootyard.
type State string

const (
	StateDiscovered   State = "discovered"   // network-booted, not imported
	StateRegistered   State = "registered"   // imported, waiting to boot the installer
	StateProvisioning State = "provisioning" // installer script served, OS being written
	StateInstalled    State = "installed"    // OS on disk, join data delivered
	StateJoining      State = "joining"      // first boot ran the distribution's installer; its join is under way
	StateJoined       State = "joined"       // the distribution reports its join finished (LLMOS: bootstrapped)
	StateActive       State = "active"       // Ready in the cluster
	StateDeleting     State = "deleting"     // being drained and removed from the cluster
	StateWiping       State = "wiping"       // next network boot wipes and reinstalls without join data
	StateDeleted      State = "deleted"      // wiped; never gets join data again until re-imported
	StateFailed       State = "failed"       // install or wipe failed; Reason says why
)

// States lists every state in lifecycle order, for tables and filters.
var States = []State{StateDiscovered, StateRegistered, StateProvisioning, StateInstalled,
	StateJoining, StateJoined, StateActive, StateDeleting, StateWiping, StateDeleted, StateFailed}

// transitions is the one table of allowed moves. Anything not listed is an error.
var transitions = map[State][]State{
	StateDiscovered:   {StateRegistered},
	StateRegistered:   {StateProvisioning, StateFailed, StateDeleting},
	StateProvisioning: {StateInstalled, StateRegistered, StateFailed, StateDeleting},
	// installed → provisioning is a reinstall; installed → active when the cluster says Ready.
	// installed → joining when the first-boot script starts the installer; installed →
	// joined when a script that did not report the start reports the end.
	StateInstalled: {StateProvisioning, StateJoining, StateJoined, StateActive, StateFailed, StateDeleting},
	// joining → failed when the distribution's join fails (the script reports it, with
	// the unit's log); joining → active when the cluster says Ready before the report.
	StateJoining: {StateProvisioning, StateJoined, StateActive, StateFailed, StateDeleting},
	// joined is the end of the road without a kubeconfig; with one, Ready makes it active.
	StateJoined: {StateProvisioning, StateActive, StateDeleting},
	// active → installed when the Kubernetes Node vanishes without a delete through Bootyard.
	StateActive:   {StateInstalled, StateDeleting},
	StateDeleting: {StateWiping, StateDeleted, StateFailed},
	StateWiping:   {StateDeleted, StateFailed},
	// deleted → registered is a re-import: the only way back to join data.
	StateDeleted: {StateRegistered, StateWiping},
	// failed → registered retries an install; failed → wiping or deleting retries a deletion;
	// failed → joining is an operator rerunning the first-boot script on the machine.
	StateFailed: {StateRegistered, StateJoining, StateDeleting, StateWiping},
}

// ParseState accepts a state name.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("state %q: %w", s, ErrInvalid)
}

// CanTransition reports whether the table allows from → to.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// InCluster reports whether a node in this state is (or is about to be) a cluster member.
func (s State) InCluster() bool {
	switch s {
	case StateProvisioning, StateInstalled, StateJoining, StateJoined, StateActive:
		return true
	}
	return false
}

// MayReceiveJoinData reports whether NoCloud data with the join token may be served.
// A node that is deleting, wiping or deleted must never see the token again; one that
// has joined (or is active) needs it no more.
func (s State) MayReceiveJoinData() bool {
	switch s {
	case StateRegistered, StateProvisioning, StateInstalled, StateJoining:
		return true
	}
	return false
}

// Transition is the one door for state changes: it checks the table, updates the node
// and returns the event that the store must write in the same transaction.
func (n *Node) Transition(to State, reason, source string, at time.Time) (Event, error) {
	from := n.State
	if !CanTransition(from, to) {
		return Event{}, fmt.Errorf("node %s: %s → %s: %w", n.Name, from, to, ErrIllegalTransition)
	}
	if to == StateFailed {
		n.FailedFrom = from
	} else {
		n.FailedFrom = ""
	}
	n.State = to
	n.StateReason = reason
	n.StateSince = at
	n.UpdatedAt = at
	if to == StateProvisioning {
		// A new provisioning generation changes cloud-init's instance-id, so a reinstalled
		// machine runs its first-boot modules again.
		n.Generation++
	}
	return Event{Time: at, Node: n.Name, Type: EventTransition, From: from, To: to, Reason: reason, Source: source}, nil
}

// RetryState is where a failed node goes on retry: back to install or back to the wipe.
func (n *Node) RetryState() (State, error) {
	if n.State != StateFailed {
		return "", fmt.Errorf("node %s is %s, not failed: %w", n.Name, n.State, ErrIllegalTransition)
	}
	switch n.FailedFrom {
	case StateDeleting:
		return StateDeleting, nil
	case StateWiping, StateDeleted:
		return StateWiping, nil
	}
	return StateRegistered, nil
}
