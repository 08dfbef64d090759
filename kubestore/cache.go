package kubestore

import (
	"log/slog"
	"sync"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// newest keeps, per object name, the copy with the highest resourceVersion among those
// the informer delivers and those this replica's own writes return, so a caller reads
// what it just wrote without waiting for the watch. A deletion leaves a tombstone so a
// late watch event cannot bring the object back. Its callers hold their own lock.
type newest[T any] struct {
	byName map[string]*versionedEntry[T]
	tomb   map[string]uint64
}

type versionedEntry[T any] struct {
	v  T
	rv uint64
}

func newNewest[T any]() newest[T] {
	return newest[T]{byName: make(map[string]*versionedEntry[T]), tomb: make(map[string]uint64)}
}

// put stores v at rv unless a copy at least as new (or a later deletion) is known. It
// returns the copy it replaced, if any, and whether v was stored.
func (m *newest[T]) put(name string, rv uint64, v T) (old *versionedEntry[T], stored bool) {
	if t, ok := m.tomb[name]; ok {
		if rv <= t {
			return nil, false
		}
		delete(m.tomb, name)
	}
	old = m.byName[name]
	if old != nil && old.rv >= rv {
		return nil, false
	}
	m.byName[name] = &versionedEntry[T]{v: v, rv: rv}
	return old, true
}

// remove drops name; rv is the last version the remover knew (0: unknown).
func (m *newest[T]) remove(name string, rv uint64) (old *versionedEntry[T]) {
	old = m.byName[name]
	if old != nil {
		rv = max(rv, old.rv)
		delete(m.byName, name)
	}
	m.tomb[name] = max(m.tomb[name], rv)
	return old
}

// nodeCache is this replica's view of every BootyardNode, with a MAC index.
type nodeCache struct {
	mu    sync.RWMutex
	nodes newest[*cachedNode]
	byMAC map[node.MAC]string
	// byState, byLabel (key=value) and byLabelKey index the nodes for QueryNodes
	// (node_index.go).
	byState, byLabel, byLabelKey nameIndex
	// resvGen counts changes to the static addresses, as the bbolt store's does.
	resvGen uint64
}

type cachedNode struct {
	obj *v1alpha1.BootyardNode
	n   node.Node
	rv  uint64
}

func newNodeCache() *nodeCache {
	return &nodeCache{nodes: newNewest[*cachedNode](), byMAC: make(map[node.MAC]string),
		byState: nameIndex{}, byLabel: nameIndex{}, byLabelKey: nameIndex{}}
}

func (c *nodeCache) put(o *v1alpha1.BootyardNode) {
	n, err := toNode(o)
	if err != nil {
		slog.Warn("kubernetes store: node object skipped", slog.String("node", o.Name), slog.Any("err", err))
		return
	}
	rv := resourceVersion(o.ResourceVersion)
	c.mu.Lock()
	defer c.mu.Unlock()
	old, stored := c.nodes.put(o.Name, rv, &cachedNode{obj: o, n: n, rv: rv})
	if !stored {
		return
	}
	var before *node.Node
	if old != nil {
		c.unindex(old.v)
		before = &old.v.n
	}
	if store.ReservationChanged(before, &n) {
		c.resvGen++
	}
	for _, m := range n.MACs {
		c.byMAC[m] = o.Name
	}
	c.index(&n)
}

func (c *nodeCache) unindex(e *cachedNode) {
	for _, m := range e.n.MACs {
		if c.byMAC[m] == e.n.Name {
			delete(c.byMAC, m)
		}
	}
	c.unindexQuery(&e.n)
}

func (c *nodeCache) remove(name string, rv uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.nodes.remove(name, rv); old != nil {
		c.unindex(old.v)
		if store.ReservationChanged(&old.v.n, nil) {
			c.resvGen++
		}
	}
}

func (c *nodeCache) get(name string) (*cachedNode, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.nodes.byName[name]
	if !ok {
		return nil, false
	}
	return e.v, true
}

func (c *nodeCache) byMACName(mac node.MAC) (*cachedNode, bool) {
	c.mu.RLock()
	name, ok := c.byMAC[mac]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return c.get(name)
}

// each calls fn for every node under the read lock; fn must not call the cache.
func (c *nodeCache) each(fn func(e *cachedNode)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.nodes.byName {
		fn(e.v)
	}
}
