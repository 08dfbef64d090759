package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// DeleteNode applies node.PlanDeletion to the node named name against the whole
// inventory, in one transaction, so two concurrent deletions cannot both pass a quorum
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
		var all []node.Node
		if err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n node.Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %s: %w", k, err)
			}
			all = append(all, n)
			return nil
		}); err != nil {
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
