package node

import "fmt"

// Quorum is the etcd arithmetic for a number of server nodes.
type Quorum struct {
	Servers          int `json:"servers"`
	Majority         int `json:"majority"`
	FailureTolerance int `json:"failureTolerance"`
}

// QuorumFor gives the majority (n/2+1) and failure tolerance ((n-1)/2) for n servers.
func QuorumFor(servers int) Quorum {
	if servers <= 0 {
		return Quorum{}
	}
	return Quorum{Servers: servers, Majority: servers/2 + 1, FailureTolerance: (servers - 1) / 2}
}

// Warnings are the operator advice for the server count, as the LLMOS docs give it.
func (q Quorum) Warnings() []string {
	switch {
	case q.Servers == 0:
		return []string{"no server nodes: import one; the first server becomes the cluster-init node"}
	case q.Servers%2 == 0:
		return []string{fmt.Sprintf("even number of servers (%d): it tolerates no more failures than %d; an odd count is recommended",
			q.Servers, q.Servers-1)}
	}
	return nil
}

// ServerMember is a server node as the quorum check sees it.
type ServerMember struct {
	Name string
	Up   bool // Ready in the cluster, or not known to be down when Bootyard is not connected
}

// CheckServerRemoval decides whether removing target from members leaves etcd a quorum:
// the remaining members must still have a majority of themselves up. Removing the last
// server while other nodes remain is refused too, since workers would lose their cluster.
func CheckServerRemoval(members []ServerMember, target string, otherNodes int) error {
	remaining, up := 0, 0
	for _, m := range members {
		if m.Name == target {
			continue
		}
		remaining++
		if m.Up {
			up++
		}
	}
	if remaining == 0 {
		if otherNodes > 0 {
			return fmt.Errorf("%s is the last server and %d other nodes depend on it: %w", target, otherNodes, ErrRefused)
		}
		return nil
	}
	q := QuorumFor(remaining)
	if up < q.Majority {
		return fmt.Errorf("removing %s leaves %d servers of which %d are up, below the majority of %d: etcd would lose quorum: %w",
			target, remaining, up, q.Majority, ErrRefused)
	}
	return nil
}
