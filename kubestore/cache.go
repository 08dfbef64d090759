package kubestore

import (
	"log/slog"
	"sync"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// nodeCache is this replica's view of every BootyardNode, fed by the informer AND by
// this replica's own writes, so a caller reads what it just wrote without waiting for
// the watch. Of two copies of one object the higher resourceVersion wins; a deletion
// leaves a tombstone so a late watch event cannot bring the object back.
type nodeCache struct {
	mu     sync.RWMutex
	byName map[string]*cachedNode
	byMAC  map[node.MAC]string
	tomb   map[string]uint64
	// resvGen counts changes to the static addresses, as the bbolt store's does.
	resvGen uint64
}

type cachedNode struct {
	obj *v1alpha1.BootyardNode
	n   node.Node
	rv  uint64
}

func newNodeCache() *nodeCache {
	return &nodeCache{byName: make(map[string]*cachedNode), byMAC: make(map[node.MAC]string), tomb: make(map[string]uint64)}
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
	if t, ok := c.tomb[o.Name]; ok {
		if rv <= t {
			return
		}
		delete(c.tomb, o.Name)
	}
	old := c.byName[o.Name]
	if old != nil && old.rv >= rv {
		return
	}
	if old != nil {
		c.unindex(old)
		if store.ReservationChanged(&old.n, &n) {
			c.resvGen++
		}
	} else if n.IP.IsValid() {
		c.resvGen++
	}
	e := &cachedNode{obj: o, n: n, rv: rv}
	c.byName[o.Name] = e
	for _, m := range n.MACs {
		c.byMAC[m] = o.Name
	}
}

func (c *nodeCache) unindex(e *cachedNode) {
	for _, m := range e.n.MACs {
		if c.byMAC[m] == e.n.Name {
			delete(c.byMAC, m)
		}
	}
}

// remove drops name; rv is the last version the remover knew (0: unknown).
func (c *nodeCache) remove(name string, rv uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.byName[name]
	if old != nil {
		rv = max(rv, old.rv)
		c.unindex(old)
		delete(c.byName, name)
		if old.n.IP.IsValid() {
			c.resvGen++
		}
	}
	c.tomb[name] = max(c.tomb[name], rv)
}

func (c *nodeCache) get(name string) (*cachedNode, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byName[name]
	return e, ok
}

func (c *nodeCache) byMACName(mac node.MAC) (*cachedNode, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	name, ok := c.byMAC[mac]
	if !ok {
		return nil, false
	}
	e, ok := c.byName[name]
	return e, ok
}

// each calls fn for every node under the read lock; fn must not call the cache.
func (c *nodeCache) each(fn func(e *cachedNode)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.byName {
		fn(e)
	}
}

// leaseCache is nodeCache's counterpart for BootyardLeases.
type leaseCache struct {
	mu    sync.RWMutex
	byIP  map[string]*cachedLease // object name → record
	byMAC map[node.MAC]string
	tomb  map[string]uint64
}

type cachedLease struct {
	obj *v1alpha1.BootyardLease
	l   store.Lease
	rv  uint64
}

func newLeaseCache() *leaseCache {
	return &leaseCache{byIP: make(map[string]*cachedLease), byMAC: make(map[node.MAC]string), tomb: make(map[string]uint64)}
}

func (c *leaseCache) put(o *v1alpha1.BootyardLease) {
	l, err := toLease(o)
	if err != nil {
		slog.Warn("kubernetes store: lease object skipped", slog.String("lease", o.Name), slog.Any("err", err))
		return
	}
	rv := resourceVersion(o.ResourceVersion)
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tomb[o.Name]; ok {
		if rv <= t {
			return
		}
		delete(c.tomb, o.Name)
	}
	old := c.byIP[o.Name]
	if old != nil && old.rv >= rv {
		return
	}
	if old != nil && !old.l.MAC.IsZero() && c.byMAC[old.l.MAC] == o.Name {
		delete(c.byMAC, old.l.MAC)
	}
	c.byIP[o.Name] = &cachedLease{obj: o, l: l, rv: rv}
	if !l.MAC.IsZero() {
		c.byMAC[l.MAC] = o.Name
	}
}

func (c *leaseCache) remove(name string, rv uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byIP[name]; old != nil {
		rv = max(rv, old.rv)
		if !old.l.MAC.IsZero() && c.byMAC[old.l.MAC] == name {
			delete(c.byMAC, old.l.MAC)
		}
		delete(c.byIP, name)
	}
	c.tomb[name] = max(c.tomb[name], rv)
}

func (c *leaseCache) get(name string) (*cachedLease, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byIP[name]
	return e, ok
}

func (c *leaseCache) forMAC(mac node.MAC) (*cachedLease, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	name, ok := c.byMAC[mac]
	if !ok {
		return nil, false
	}
	e, ok := c.byIP[name]
	return e, ok
}
