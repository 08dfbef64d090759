package node

import "fmt"

// Role is what a machine becomes in the cluster. LLMOS distinguishes the first server
// (cluster-init) from later ones only at join time, so that is a flag on Node, not a role.
type Role string

const (
	RoleServer Role = "server" // API server, controller-manager, etcd member
	RoleWorker Role = "worker" // LLMOS calls it "agent"
)

// ParseRole accepts server or worker (and agent, the LLMOS word for worker).
func ParseRole(s string) (Role, error) {
	switch s {
	case "server":
		return RoleServer, nil
	case "worker", "agent":
		return RoleWorker, nil
	}
	return "", fmt.Errorf("role %q: %w: must be server or worker", s, ErrInvalid)
}
