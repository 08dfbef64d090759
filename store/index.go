package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"

	bolt "go.etcd.io/bbolt"

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
)

var indexBuckets = [][]byte{bucketStateIndex, bucketRoleIndex, bucketLabelIndex, bucketLabelKeyIndex, bucketIPIndex, bucketStateCounts}

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

// indexNode adds n's index entries; unindexNode removes them. putNode calls both around
// a change, so an entry that did not change is deleted and put again in the same
// transaction, which bbolt turns into one page write.
func indexNode(tx *bolt.Tx, n *node.Node) error {
	if err := tx.Bucket(bucketStateIndex).Put(joinKey(string(n.State), n.Name), nil); err != nil {
		return err
	}
	if err := tx.Bucket(bucketRoleIndex).Put(joinKey(string(n.Role), n.Name), []byte(n.State)); err != nil {
		return err
	}
	for k, v := range n.Labels {
		if err := tx.Bucket(bucketLabelIndex).Put(joinKey(k, v, n.Name), nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketLabelKeyIndex).Put(joinKey(k, n.Name), []byte(v)); err != nil {
			return err
		}
	}
	if n.IP.IsValid() {
		if err := tx.Bucket(bucketIPIndex).Put(ipKey(n.IP.Addr(), n.Name), nil); err != nil {
			return err
		}
	}
	return addStateCount(tx, n.State, 1)
}

// sameIndexEntries reports whether a and b index alike, so a write that changes only what
// no index holds (a boot record, a timestamp) skips the index buckets: RecordBoot runs on
// the DHCP path.
func sameIndexEntries(a, b *node.Node) bool {
	return a.Name == b.Name && a.State == b.State && a.Role == b.Role && a.IP.Addr() == b.IP.Addr() && maps.Equal(a.Labels, b.Labels)
}

func unindexNode(tx *bolt.Tx, n *node.Node) error {
	if err := tx.Bucket(bucketStateIndex).Delete(joinKey(string(n.State), n.Name)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketRoleIndex).Delete(joinKey(string(n.Role), n.Name)); err != nil {
		return err
	}
	for k, v := range n.Labels {
		if err := tx.Bucket(bucketLabelIndex).Delete(joinKey(k, v, n.Name)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketLabelKeyIndex).Delete(joinKey(k, n.Name)); err != nil {
			return err
		}
	}
	if n.IP.IsValid() {
		if err := tx.Bucket(bucketIPIndex).Delete(ipKey(n.IP.Addr(), n.Name)); err != nil {
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

// buildIndexes is migration 1 → 2: it indexes the nodes a version-1 file already holds.
func buildIndexes(tx *bolt.Tx) error {
	return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		var n node.Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", k, err)
		}
		return indexNode(tx, &n)
	})
}
