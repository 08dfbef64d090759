package store

import (
	"context"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// bulkBatch is how many nodes one transaction of a bulk change writes. One transaction
// per node cost a commit (and an fsync) each: 10,000 label changes took longer than
// importing 100,000 nodes. One transaction for everything would hold the store's only
// writer (the DHCP path records boots through it) for as long as 100,000 changes take;
// batches of 500 keep each wait short.
const bulkBatch = 500

// BulkResult is what a bulk change did to one node: the node as it now stands, or why it
// was left alone.
type BulkResult struct {
	Name    string
	Node    node.Node
	Removed bool // DeleteNodes removed the record
	Err     error
}

// UpdateNodes is UpdateNode for many nodes, in transactions of bulkBatch nodes. A node
// fn refuses, that no longer exists or that fails validation keeps its own error and does
// not stop the others. fn must not rename a node (that node fails with ErrInvalid). An
// error of the store itself ends the call: the nodes of earlier batches are changed, and
// this batch and every later node report that error.
func (s *Store) UpdateNodes(ctx context.Context, names []string, fn UpdateFunc) ([]BulkResult, error) {
	return s.bulk(ctx, names, func(tx *bolt.Tx, _ *bulkView, name string) (bulkChange, error) {
		old, err := getNode(tx, name)
		if err != nil {
			return bulkChange{}, err
		}
		n := old
		n.MACs, n.Labels = slices.Clone(old.MACs), maps.Clone(old.Labels) // see UpdateNode
		events, err := fn(&n)
		if err == nil && n.Name != old.Name {
			err = fmt.Errorf("rename %s → %s: %w: not in a bulk change", old.Name, n.Name, node.ErrInvalid)
		}
		if err == nil {
			err = n.Validate()
		}
		if err == nil {
			// The one refusal putNode can make, checked before anything is written, so
			// that it fails this node and not the batch.
			err = checkMACs(tx, &n, &old)
		}
		if err != nil {
			return bulkChange{}, err
		}
		if !n.UpdatedAt.After(old.UpdatedAt) {
			n.UpdatedAt = s.now()
		}
		ch := bulkChange{before: old, after: n, written: true}
		if err := putNode(tx, &n, &old); err != nil {
			return ch, err
		}
		return ch, s.appendEvents(tx, events...)
	})
}

// DeleteNodes is DeleteNode for many nodes, in transactions of bulkBatch nodes. Each node
// is planned (node.PlanDeletion) against the inventory as the deletions before it left
// it, so quorum rules refuse a server exactly where deleting them one by one would. The
// inventory's view is read once per transaction and kept current, not once per node.
// opts.Confirm is set to each node's name: the caller has had the operator confirm the
// whole selection. Errors are as for UpdateNodes.
func (s *Store) DeleteNodes(ctx context.Context, names []string, opts node.DeleteOptions) ([]BulkResult, error) {
	return s.bulk(ctx, names, func(tx *bolt.Tx, view *bulkView, name string) (bulkChange, error) {
		target, err := getNode(tx, name)
		if err != nil {
			return bulkChange{}, err
		}
		if err := view.load(tx); err != nil {
			return bulkChange{written: true}, err // the store's error, not the node's
		}
		old := target
		o := opts
		o.Confirm = name
		if o.Now.IsZero() {
			o.Now = s.now()
		}
		plan, err := node.PlanDeletion(&target, view.all, o)
		if err != nil {
			return bulkChange{}, err
		}
		if plan.Remove {
			view.remove(name)
			return bulkChange{before: old, after: old, removed: true, written: true}, removeNode(tx, &old, true)
		}
		view.set(target)
		ch := bulkChange{before: old, after: target, written: true}
		if err := putNode(tx, &target, &old); err != nil {
			return ch, err
		}
		return ch, s.appendEvents(tx, plan.Events...)
	})
}

// bulkStep changes one node inside a batch's transaction. An error with written false is
// the node's own (nothing was written); with written true it ends the transaction.
type bulkStep func(tx *bolt.Tx, view *bulkView, name string) (bulkChange, error)

// bulkChange is one node's change: the node before and after (after is the removed
// record when removed).
type bulkChange struct {
	before, after    node.Node
	removed, written bool
}

func (s *Store) bulk(ctx context.Context, names []string, step bulkStep) ([]BulkResult, error) {
	results := make([]BulkResult, len(names))
	for i, name := range names {
		results[i].Name = name
	}
	if err := ctxErr(ctx); err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results, err
	}
	for start := 0; start < len(names); start += bulkBatch {
		end := min(start+bulkBatch, len(names))
		var changes []bulkChange
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := ctxErr(ctx); err != nil {
				return err
			}
			changes = changes[:0]
			view := &bulkView{}
			for i := start; i < end; i++ {
				r := &results[i]
				*r = BulkResult{Name: names[i]}
				ch, err := step(tx, view, names[i])
				if err != nil && ch.written {
					return fmt.Errorf("bulk change of %s: %w", names[i], err)
				}
				if err != nil {
					r.Err = err
					continue
				}
				r.Node, r.Removed = ch.after, ch.removed
				if !ch.removed {
					changes = append(changes, ch)
				}
			}
			return nil
		})
		if err != nil {
			for i := start; i < len(names); i++ {
				results[i] = BulkResult{Name: names[i], Err: err}
			}
			return results, err
		}
		for _, c := range changes {
			s.updated(c.before, c.after)
		}
	}
	return results, nil
}

// bulkView is the inventory as deletion checks read it (quorumView), read at most once
// per transaction and kept current as the batch deletes.
type bulkView struct {
	all []node.Node
	at  map[string]int // name → index in all
}

func (v *bulkView) load(tx *bolt.Tx) error {
	if v.at != nil {
		return nil
	}
	all, err := quorumView(tx)
	if err != nil {
		return err
	}
	v.all, v.at = all, make(map[string]int, len(all))
	for i, n := range all {
		v.at[n.Name] = i
	}
	return nil
}

func (v *bulkView) set(n node.Node) {
	if i, ok := v.at[n.Name]; ok {
		v.all[i] = n
	}
}

func (v *bulkView) remove(name string) {
	i, ok := v.at[name]
	if !ok {
		return
	}
	last := len(v.all) - 1
	v.all[i] = v.all[last]
	v.at[v.all[i].Name] = i
	v.all = v.all[:last]
	delete(v.at, name)
}
