// Package cluster connects Bootyard to the Kubernetes cluster it provisions, through
// client-go: it watches Nodes into the inventory, takes deleted nodes out of the cluster
// (cordon, drain, network boot, Node deletion) and fences machines that try to come back.
package cluster
