// Package node is Bootyard's domain model: machines (Node), their MACs, roles,
// states and the transition table, labels and taints, and the etcd quorum math.
// It is pure Go with no I/O, so every other package can import it.
package node
