package kubestore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
)

// What a replica's cache cannot decide alone, because another replica may be deciding
// the same at once: whose a MAC is, and which server starts the cluster.

// claimMACs makes a MAC belong to one node even when two replicas create nodes with it
// at once, which their caches cannot see: every node carries a label per MAC, and after
// its create a node lists the others with its MACs from the API server. A node that
// finds another created in the same second or earlier deletes itself and is ErrConflict.
// The later of two creates always lists after the earlier, so it sees it and yields;
// the earlier yields only if it sees the later within its own second, so two creates in
// one second may both be refused (the operator imports again), never both kept.
// (creationTimestamp has one-second resolution: an order by it plus the name would let
// the later create win a tie while the earlier, which listed before it existed, wins too.)
func (s *Store) claimMACs(ctx context.Context, mine *v1alpha1.BootyardNode, replacing string) error {
	for _, m := range mine.Spec.MACs {
		var list v1alpha1.BootyardNodeList
		if err := s.rc.Get().Namespace(s.ns).Resource(resNodes).Param("labelSelector", macLabel(string(m))).Do(ctx).Into(&list); err != nil {
			s.undoCreate(ctx, mine)
			return fmt.Errorf("create node %s: check MAC %s: %w", mine.Name, m, kindErr(err))
		}
		for i := range list.Items {
			other := &list.Items[i]
			if other.Name == mine.Name || other.Name == replacing || other.CreationTimestamp.After(mine.CreationTimestamp.Time) {
				continue
			}
			s.undoCreate(ctx, mine)
			return fmt.Errorf("MAC %s belongs to node %s: %w", m, other.Name, node.ErrConflict)
		}
	}
	return nil
}

// undoCreate deletes an object this replica just created and lost a claim with.
func (s *Store) undoCreate(ctx context.Context, o *v1alpha1.BootyardNode) {
	if err := s.deleteNodeObj(ctx, o.Name, o.ResourceVersion); err != nil && !apierrors.IsNotFound(err) {
		s.log.Error("kubernetes store: a node that lost its MAC claim could not be deleted", slog.String("node", o.Name), slog.Any("err", err))
	}
}

// macLabel is the label that marks a node as holding a MAC (its value is empty).
func macLabel(m string) string { return labelMACPrefix + strings.ReplaceAll(m, ":", "") }

// settleClusterInit keeps one cluster-init server when replicas import the first servers
// at once (each cache saw no other): after writing its node, each claims the role on the
// settings object, conditional on the version it read. The first claim wins; a later one
// finds a live holder and its node gives the role up. A holder that is gone or no longer
// a live server does not count.
func (s *Store) settleClusterInit(ctx context.Context, n node.Node) (node.Node, error) {
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		o, err := s.settingsObj(ctx)
		if err != nil {
			return node.Node{}, err
		}
		holder := o.Annotations[annotationClusterInit]
		if holder == n.Name {
			return n, nil
		}
		if holder != "" && s.liveServer(ctx, holder) {
			return s.UpdateNode(ctx, n.Name, func(n *node.Node) ([]node.Event, error) {
				n.ClusterInit = false
				return nil, nil
			})
		}
		body, pt := patchMeta(map[string]string{annotationClusterInit: n.Name}, o.ResourceVersion)
		err = s.rc.Patch(pt).Namespace(s.ns).Resource(resSettings).Name(settingsName).Body(body).Do(ctx).Error()
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return node.Node{}, fmt.Errorf("claim cluster-init: %w", kindErr(err))
		}
		return n, nil
	}
	return node.Node{}, fmt.Errorf("claim cluster-init: %w: %w", errTooManyConflicts, node.ErrConflict)
}

// liveServer reports whether name is, on the API server, a server neither discovered
// nor deleted.
func (s *Store) liveServer(ctx context.Context, name string) bool {
	o, err := s.getNodeObj(ctx, name)
	if err != nil {
		return false
	}
	n, err := toNode(o)
	return err == nil && n.Role == node.RoleServer && n.State != node.StateDiscovered && n.State != node.StateDeleted
}
