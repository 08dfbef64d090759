package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// AppendEvents records events that go with no node change (a script served, progress).
// It uses bbolt's Batch, so concurrent callers share one commit and one fsync: the hot
// boot paths cost one batched write, not one each. Events of a node that does not exist
// are ErrNotFound and none of the call's events are written.
func (s *Store) AppendEvents(ctx context.Context, events ...node.Event) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		for _, e := range events {
			// A node removed between the caller's lookup and this write must not leave
			// history behind: the next node to take that name would inherit it.
			if e.Node != "" && tx.Bucket(bucketNodes).Get([]byte(e.Node)) == nil {
				return fmt.Errorf("append events: node %q: %w", e.Node, node.ErrNotFound)
			}
		}
		return s.appendEvents(tx, events...)
	})
}

// Events returns a node's events, oldest first; limit > 0 keeps only the newest limit.
func (s *Store) Events(ctx context.Context, name string, limit int) ([]node.Event, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []node.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketNodes).Get([]byte(name)) == nil {
			return fmt.Errorf("node %q: %w", name, node.ErrNotFound)
		}
		b := tx.Bucket(bucketEvents).Bucket([]byte(name))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Last()
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var e node.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode event %s/%d: %w", name, decodeUint(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	// Collected newest first; callers read history oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

func (s *Store) appendEvents(tx *bolt.Tx, events ...node.Event) error {
	for _, e := range events {
		if e.Node == "" {
			return fmt.Errorf("event without a node: %+v", e)
		}
		b, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(e.Node))
		if err != nil {
			return fmt.Errorf("events bucket %s: %w", e.Node, err)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if err := b.Put(encodeUint(seq), v); err != nil {
			return err
		}
		t := getEventTotals(tx, e.Node)
		t.count++
		t.bytes += uint64(len(v))
		if err := s.trimEvents(tx, b, &t); err != nil {
			return fmt.Errorf("trim events of %s: %w", e.Node, err)
		}
		if err := putEventTotals(tx, e.Node, t); err != nil {
			return err
		}
	}
	return nil
}

// moveEvents carries a node's history to its new name (rename, discovered → imported).
func (s *Store) moveEvents(tx *bolt.Tx, from, to string) error {
	events := tx.Bucket(bucketEvents)
	src := events.Bucket([]byte(from))
	if src == nil {
		return nil
	}
	var moved []node.Event
	if err := src.ForEach(func(_, v []byte) error {
		var e node.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		e.Node = to
		moved = append(moved, e)
		return nil
	}); err != nil {
		return fmt.Errorf("move events %s → %s: %w", from, to, err)
	}
	if err := events.DeleteBucket([]byte(from)); err != nil {
		return err
	}
	if err := deleteEventTotals(tx, from); err != nil {
		return err
	}
	return s.appendEvents(tx, moved...)
}
