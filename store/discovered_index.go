package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bootyard/bootyard/node"
)

// discoveredKey orders discovered nodes by LastSeen, oldest first; the name after the
// time makes the key unique.
func discoveredKey(n *node.Node) []byte {
	k := make([]byte, 8, 8+len(n.Name))
	ns := n.LastSeen.UnixNano()
	if n.LastSeen.IsZero() || ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	return append(k, n.Name...)
}

// indexDiscovered keeps the discovered index and its count in step with one node write:
// before is the stored record it replaces or removes (nil for none), after the record
// written (nil for a removal). putNode and removeNode call it, so no path that writes a
// node can leave the index behind.
func indexDiscovered(tx *bolt.Tx, before, after *node.Node) error {
	idx := tx.Bucket(bucketDiscovered)
	delta := 0
	if before != nil && before.State == node.StateDiscovered {
		if err := idx.Delete(discoveredKey(before)); err != nil {
			return err
		}
		delta--
	}
	if after != nil && after.State == node.StateDiscovered {
		if err := idx.Put(discoveredKey(after), nil); err != nil {
			return err
		}
		delta++
	}
	if delta == 0 {
		return nil
	}
	return addDiscoveredCount(tx, delta)
}

func discoveredCount(tx *bolt.Tx) int {
	return int(decodeUint(tx.Bucket(bucketMeta).Get(keyDiscovered)))
}

func addDiscoveredCount(tx *bolt.Tx, delta int) error {
	return tx.Bucket(bucketMeta).Put(keyDiscovered, encodeUint(uint64(max(0, discoveredCount(tx)+delta))))
}

// evictDiscovered forgets the longest-unseen discovered nodes until at most max remain.
// Each step is one cursor seek, not a scan: the cost at the cap is the same for ten
// records as for ten thousand.
func (s *Store) evictDiscovered(tx *bolt.Tx, limit int) error {
	evicted := 0
	c := tx.Bucket(bucketDiscovered).Cursor()
	for discoveredCount(tx) > limit {
		k, _ := c.First()
		if k == nil {
			// The count says more than the index holds: trust the index.
			if err := tx.Bucket(bucketMeta).Put(keyDiscovered, encodeUint(0)); err != nil {
				return err
			}
			break
		}
		name := string(k[8:])
		n, err := getNode(tx, name)
		if err != nil || n.State != node.StateDiscovered || !bytes.Equal(discoveredKey(&n), k) {
			// A stale entry (cannot happen while every write goes through putNode and
			// removeNode): drop it so it cannot pin the cap.
			s.log.Warn("store: dropping a stale discovered-index entry", slog.String("node", name))
			if err := c.Delete(); err != nil {
				return err
			}
			if err := addDiscoveredCount(tx, -1); err != nil {
				return err
			}
			continue
		}
		if err := removeNode(tx, &n, true); err != nil {
			return fmt.Errorf("evict discovered %s: %w", name, err)
		}
		evicted++
	}
	if evicted > 0 {
		tx.OnCommit(func() { s.bounds.discoveredEvicted.Add(uint64(evicted)) })
	}
	return nil
}

// indexBoundedState builds the discovered index and the history sizes for a file
// written before they existed (schema 1 → 2). It starts from empty buckets, so running
// it again (a migration list reordered in a merge) rebuilds rather than double-counts.
func indexBoundedState(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketDiscovered, bucketEventTotals} {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketMeta).Put(keyDiscovered, encodeUint(0)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		var n node.Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", k, err)
		}
		return indexDiscovered(tx, nil, &n)
	}); err != nil {
		return err
	}
	events := tx.Bucket(bucketEvents)
	return events.ForEachBucket(func(name []byte) error {
		var t eventTotals
		if err := events.Bucket(name).ForEach(func(_, v []byte) error {
			t.count++
			t.bytes += uint64(len(v))
			return nil
		}); err != nil {
			return err
		}
		return putEventTotals(tx, string(name), t)
	})
}
