package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bootyard/bootyard/node"
)

// Secondary indexes over the nodes bucket. They are written by putNode and removeNode in
// the same transaction as the node, so a page of 100 nodes out of 100,000 (by state, role,
// label, IP) is a cursor seek and 100 reads instead of decoding the whole inventory.
// Names are DNS-1123 labels and states, roles and label keys/values cannot hold a NUL, so
// NUL separates the parts of a key and keeps each prefix's entries in name order.
var (
	bucketStateIndex    = []byte("state_index")     // state NUL name → nil
	bucketRoleIndex     = []byte("role_index")      // role NUL name → state
	bucketLabelIndex    = []byte("label_index")     // key NUL value NUL name → nil
	bucketLabelKeyIndex = []byte("label_key_index") // key NUL name → value
	bucketIPIndex       = []byte("ip_index")        // 16-byte address, name → nil
	bucketStateCounts   = []byte("state_counts")    // state → count (8 bytes BE)
	// bucketImageIndex: image NUL name → state, the image empty for the cluster default,
	// so removing an image reads the nodes that use it, not the inventory.
	bucketImageIndex = []byte("image_index")
)

var indexBuckets = [][]byte{bucketStateIndex, bucketRoleIndex, bucketLabelIndex, bucketLabelKeyIndex, bucketIPIndex, bucketStateCounts, bucketImageIndex}

func joinKey(parts ...string) []byte {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(p)
	}
	return b.Bytes()
}

func ipKey(a netip.Addr, name string) []byte {
	a16 := a.As16()
	return append(a16[:], name...)
}

// indexEntry is one key an index holds for a node.
type indexEntry struct {
	bucket     []byte
	key, value []byte
}

// indexEntries lists the keys n puts in the indexes (not the counts, not the MAC index).
func indexEntries(n *node.Node) []indexEntry {
	out := []indexEntry{
		{bucketStateIndex, joinKey(string(n.State), n.Name), nil},
		{bucketRoleIndex, joinKey(string(n.Role), n.Name), []byte(n.State)},
		{bucketImageIndex, joinKey(n.Image, n.Name), []byte(n.State)},
	}
	for k, v := range n.Labels {
		out = append(out, indexEntry{bucketLabelIndex, joinKey(k, v, n.Name), nil},
			indexEntry{bucketLabelKeyIndex, joinKey(k, n.Name), []byte(v)})
	}
	if n.IP.IsValid() {
		out = append(out, indexEntry{bucketIPIndex, ipKey(n.IP.Addr(), n.Name), nil})
	}
	return out
}

// indexNode adds n's index entries; unindexNode removes them. putNode calls both around
// a change that touches what the indexes hold. With pending set (a bulk import), the
// entries are collected instead, to be written sorted at the end (see flushIndex).
func indexNode(tx *bolt.Tx, n *node.Node, pending *[]indexEntry) error {
	for _, e := range indexEntries(n) {
		if pending != nil {
			*pending = append(*pending, e)
			continue
		}
		if err := tx.Bucket(e.bucket).Put(e.key, e.value); err != nil {
			return err
		}
	}
	return addStateCount(tx, n.State, 1)
}

// flushIndex writes collected entries in key order, bucket by bucket. bbolt keeps a
// transaction's changes in one in-memory node per page and inserts by shifting the keys
// after the new one: 100,000 keys inserted out of order (a rack label, MACs in another
// order than names) cost 100,000 shifts of a growing slice, quadratic; in order, each is
// an append.
func flushIndex(tx *bolt.Tx, pending []indexEntry) error {
	slices.SortFunc(pending, func(a, b indexEntry) int {
		if c := bytes.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		return bytes.Compare(a.key, b.key)
	})
	for _, e := range pending {
		if err := tx.Bucket(e.bucket).Put(e.key, e.value); err != nil {
			return err
		}
	}
	return nil
}

// sameIndexEntries reports whether a and b index alike, so a write that changes only what
// no index holds (a boot record, a timestamp) skips the index buckets: RecordBoot runs on
// the DHCP path.
func sameIndexEntries(a, b *node.Node) bool {
	return a.Name == b.Name && a.State == b.State && a.Role == b.Role && a.IP.Addr() == b.IP.Addr() && a.Image == b.Image &&
		maps.Equal(a.Labels, b.Labels)
}

func unindexNode(tx *bolt.Tx, n *node.Node) error {
	for _, e := range indexEntries(n) {
		if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	return addStateCount(tx, n.State, -1)
}

func addStateCount(tx *bolt.Tx, st node.State, delta int64) error {
	b := tx.Bucket(bucketStateCounts)
	cur := int64(decodeUint(b.Get([]byte(st))))
	cur += delta
	if cur <= 0 {
		return b.Delete([]byte(st))
	}
	return b.Put([]byte(st), encodeUint(uint64(cur)))
}

// stateCounts reads the maintained counters: counting 100,000 nodes by state costs one
// small bucket scan, so the nodes page can show them on every render and stream tick.
func stateCounts(tx *bolt.Tx) map[node.State]int {
	counts := make(map[node.State]int, len(node.States))
	_ = tx.Bucket(bucketStateCounts).ForEach(func(k, v []byte) error {
		counts[node.State(k)] = int(decodeUint(v))
		return nil
	})
	return counts
}

// buildIndexes is migration 2 → 3 (and 3 → 4, which added the image index): it indexes
// the nodes an older file already holds.
// It starts from empty index buckets, so a file whose indexes are partly written (or
// running it twice) still ends with each node indexed once.
func buildIndexes(tx *bolt.Tx) error {
	for _, name := range indexBuckets {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		var n node.Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", k, err)
		}
		return indexNode(tx, &n, nil)
	})
}
