package web

import (
	"context"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// ClusterIntegration is the Kubernetes side of Bootyard when it is connected to the
// cluster (package cluster): a live quorum check before a deletion, the drain and
// removal after it, and the cluster's own server count.
type ClusterIntegration interface {
	// CheckDeletion refuses (node.ErrRefused) what the live cluster cannot afford.
	CheckDeletion(ctx context.Context, name string) error
	// StartDeletion takes a node that is `deleting` out of the cluster, asynchronously.
	StartDeletion(ctx context.Context, name string, force bool)
	// LiveServers is the server count and cluster-init node as the cluster sees them;
	// ok is false until the integration has synced.
	LiveServers() (servers int, clusterInit string, ok bool)
}

// deleteWithCluster is Inventory.DeleteNode between the cluster's live quorum check
// (skipped when forced, like the store's own) and the hand-off of a node left
// `deleting` to the cluster integration. Without one it is Inventory.DeleteNode.
func (s *Server) deleteWithCluster(ctx context.Context, inv Inventory, name string, opts node.DeleteOptions) (node.Node, bool, error) {
	cl := s.deps.Cluster
	if cl != nil && !opts.Force {
		if err := cl.CheckDeletion(ctx, name); err != nil {
			return node.Node{}, false, err
		}
	}
	n, removed, err := inv.DeleteNode(ctx, name, opts)
	if err == nil && !removed && cl != nil && n.State == node.StateDeleting {
		cl.StartDeletion(ctx, n.Name, opts.Force)
	}
	return n, removed, err
}

// deleteManyWithCluster is deleteWithCluster for a bulk delete: the cluster's live check
// node by node (unless forced), then one Inventory.DeleteNodes for the nodes it allows,
// then the hand-off of each node left `deleting`.
func (s *Server) deleteManyWithCluster(ctx context.Context, names []string, opts node.DeleteOptions) ([]store.BulkResult, error) {
	cl := s.deps.Cluster
	results := make([]store.BulkResult, len(names))
	allowed := make([]string, 0, len(names))
	at := make([]int, 0, len(names)) // allowed[j] is names[at[j]]
	for i, name := range names {
		results[i].Name = name
		if cl != nil && !opts.Force {
			if err := cl.CheckDeletion(ctx, name); err != nil {
				results[i].Err = err
				continue
			}
		}
		allowed = append(allowed, name)
		at = append(at, i)
	}
	deleted, err := s.deps.Inventory.DeleteNodes(ctx, allowed, opts)
	for j, r := range deleted {
		results[at[j]] = r
		if r.Err == nil && !r.Removed && cl != nil && r.Node.State == node.StateDeleting {
			cl.StartDeletion(ctx, r.Node.Name, opts.Force)
		}
	}
	return results, err
}

// resumeDeletion hands a retried deletion back to the cluster integration at once
// (it would also find it on its next pass).
func (s *Server) resumeDeletion(ctx context.Context, n node.Node) {
	if s.deps.Cluster != nil && n.State == node.StateDeleting {
		s.deps.Cluster.StartDeletion(ctx, n.Name, false)
	}
}

// liveServers is the cluster's server count and cluster-init node when connected and
// synced; ok is false otherwise and the inventory's own count applies.
func (s *Server) liveServers() (servers int, clusterInit string, ok bool) {
	if s.deps.Cluster == nil || !s.cfg.ClusterConnected() {
		return 0, "", false
	}
	return s.deps.Cluster.LiveServers()
}
