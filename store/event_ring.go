package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// eventTotals is the size of one node's history, kept beside it so the ring is trimmed
// without counting the history at each append.
type eventTotals struct {
	count, bytes uint64
}

func getEventTotals(tx *bolt.Tx, name string) eventTotals {
	v := tx.Bucket(bucketEventTotals).Get([]byte(name))
	if len(v) != 16 {
		return eventTotals{}
	}
	return eventTotals{count: binary.BigEndian.Uint64(v[:8]), bytes: binary.BigEndian.Uint64(v[8:])}
}

func putEventTotals(tx *bolt.Tx, name string, t eventTotals) error {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], t.count)
	binary.BigEndian.PutUint64(v[8:], t.bytes)
	return tx.Bucket(bucketEventTotals).Put([]byte(name), v[:])
}

func deleteEventTotals(tx *bolt.Tx, name string) error {
	return tx.Bucket(bucketEventTotals).Delete([]byte(name))
}

// trimEvents drops a node's oldest entries (lowest sequence numbers) until its history
// is within the per-node caps. The newest entry is always kept, whatever its size. The
// pages the dropped entries held go back to bbolt's freelist and are reused by the next
// appends, so a node that logs forever keeps a file of constant size.
func (s *Store) trimEvents(tx *bolt.Tx, b *bolt.Bucket, t *eventTotals) error {
	maxCount, maxBytes := uint64(s.limits.MaxNodeEvents), uint64(s.limits.MaxNodeEventBytes)
	if t.count <= maxCount && t.bytes <= maxBytes {
		return nil
	}
	dropped := 0
	c := b.Cursor()
	for t.count > 1 && (t.count > maxCount || t.bytes > maxBytes) {
		k, v := c.First()
		if k == nil {
			break
		}
		size := uint64(len(v))
		if err := c.Delete(); err != nil {
			return err
		}
		t.count--
		t.bytes -= min(size, t.bytes)
		dropped++
	}
	if dropped > 0 {
		tx.OnCommit(func() { s.bounds.eventsDropped.Add(uint64(dropped)) })
	}
	return nil
}
