package store

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// DeleteNode applies node.PlanDeletion to the node named name against the inventory (as
// quorumView gives it), in one transaction, so two concurrent deletions cannot both pass a quorum
// check that only one of them may. It returns the node as it now stands and whether the
// record was removed.
func (s *Store) DeleteNode(ctx context.Context, name string, opts node.DeleteOptions) (node.Node, bool, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, false, err
	}
	var out, before node.Node
	var removed bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		target, err := getNode(tx, name)
		if err != nil {
			return err
		}
		all, err := quorumView(tx)
		if err != nil {
			return err
		}
		old := target
		before = old
		if opts.Now.IsZero() {
			opts.Now = s.now()
		}
		plan, err := node.PlanDeletion(&target, all, opts)
		if err != nil {
			return err
		}
		out = target
		if plan.Remove {
			removed = true
			return removeNode(tx, &old, true)
		}
		if err := putNode(tx, &target, &old); err != nil {
			return err
		}
		return s.appendEvents(tx, plan.Events...)
	})
	if err == nil && !removed {
		s.updated(before, out)
	}
	return out, removed, err
}

// quorumView is the inventory as the deletion checks read it: every server in full (they
// are few) and every other node as only its name, role and state, from the role index.
// A deletion among 100,000 workers reads index entries, not 100,000 records.
func quorumView(tx *bolt.Tx) ([]node.Node, error) {
	var all []node.Node
	c := tx.Bucket(bucketRoleIndex).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		role, name, _ := bytes.Cut(k, []byte{0})
		if node.Role(role) != node.RoleServer {
			all = append(all, node.Node{Name: string(name), Role: node.Role(role), State: node.State(v)})
			continue
		}
		n, err := getNode(tx, string(name))
		if err != nil {
			return nil, err
		}
		all = append(all, n)
	}
	return all, nil
}

// QuorumNodes is the inventory as quorum and deletion checks need it: servers in full,
// every other node as its name, role and state only, read from the role index without
// decoding a record. The cluster page and the delete dialog call it on every render.
func (s *Store) QuorumNodes(ctx context.Context) ([]node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []node.Node
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = quorumView(tx)
		return err
	})
	return out, err
}
