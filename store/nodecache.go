package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// NodeCache reads nodes by MAC for the boot hot path (the iPXE script endpoint, polled by
// every waiting machine). Each read is still one read transaction, so it is never stale;
// what it saves is the JSON decoding, which is most of a read's cost: a node is decoded
// only when its stored bytes differ from those it decoded last time.
//
// Nodes it returns share their slices and maps with the cache: callers must not modify them.
type NodeCache struct {
	s       *Store
	mu      sync.RWMutex
	entries map[node.MAC]*cachedNode
	next    uint64
	max     int // entries kept; see maxCachedNodes
}

// maxCachedNodes bounds the cache: it is keyed by whatever MAC a request names, and
// entries of nodes that went away (an evicted discovered record) are only dropped when
// that MAC asks again. Past the cap an arbitrary entry makes room: a miss costs one JSON
// decode, so the choice does not matter for correctness, only for a little speed.
const maxCachedNodes = 16384

type cachedNode struct {
	raw     []byte // the stored JSON the node was decoded from
	n       node.Node
	version uint64
}

// NewNodeCache makes an empty cache over s.
func (s *Store) NewNodeCache() VersionedNodes {
	return &NodeCache{s: s, entries: make(map[node.MAC]*cachedNode), max: maxCachedNodes}
}

// NodeByMAC returns the node that owns mac and a version number that changes whenever the
// stored node changes (versions are this cache's own; they are not persisted).
func (c *NodeCache) NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, uint64, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, 0, err
	}
	var (
		out     node.Node
		version uint64
	)
	err := c.s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketMACIndex).Get(mac[:])
		if name == nil {
			c.mu.Lock()
			delete(c.entries, mac)
			c.mu.Unlock()
			return fmt.Errorf("mac %s: %w", mac, node.ErrNotFound)
		}
		raw := tx.Bucket(bucketNodes).Get(name)
		if raw == nil {
			return fmt.Errorf("node %q: %w", name, node.ErrNotFound)
		}
		c.mu.RLock()
		e := c.entries[mac]
		c.mu.RUnlock()
		if e != nil && bytes.Equal(e.raw, raw) {
			out, version = e.n, e.version
			return nil
		}
		var n node.Node
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", name, err)
		}
		// raw lives in bbolt's mmap only for the transaction: keep a copy.
		e = &cachedNode{raw: bytes.Clone(raw), n: n}
		c.mu.Lock()
		c.next++
		e.version = c.next
		if _, ok := c.entries[mac]; !ok && len(c.entries) >= c.max {
			for victim := range c.entries {
				delete(c.entries, victim)
				break
			}
		}
		c.entries[mac] = e
		c.mu.Unlock()
		out, version = n, e.version
		return nil
	})
	return out, version, err
}
