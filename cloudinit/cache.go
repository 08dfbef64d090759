package cloudinit

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/bootyard/bootyard/node"
)

// maxCached bounds the cache; past it the cache starts over. Inventories are far
// smaller, so this only guards against churn of short-lived records.
const maxCached = 8192

// Cache keeps each node's rendered files until the node record or the cluster settings
// change, so serving NoCloud data costs a map lookup, not a YAML render. A node's
// UpdatedAt changes with every store write, so it (with the generation) identifies the
// record the files were rendered from.
type Cache struct {
	r       *Renderer
	mu      sync.RWMutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	updatedAt  time.Time
	generation int
	state      node.State
	join       bool
	settings   node.ClusterSettings
	files      map[string][]byte
}

// NewCache wraps r.
func NewCache(r *Renderer) *Cache {
	return &Cache{r: r, entries: make(map[string]*cacheEntry)}
}

// Files returns r.Files(n, s, join), rendering only when n or s changed since the last
// call for n. The returned map and slices are shared: callers must not modify them.
func (c *Cache) Files(n node.Node, s node.ClusterSettings, join bool) (map[string][]byte, error) {
	c.mu.RLock()
	e := c.entries[n.Name]
	c.mu.RUnlock()
	if e != nil && e.updatedAt.Equal(n.UpdatedAt) && e.generation == n.Generation && e.state == n.State &&
		e.join == join && settingsEqual(&e.settings, &s) {
		return e.files, nil
	}
	files, err := c.r.Files(n, s, join)
	if err != nil {
		return nil, err
	}
	s.InstallEnv = maps.Clone(s.InstallEnv)
	s.SSHAuthorizedKeys = slices.Clone(s.SSHAuthorizedKeys)
	c.mu.Lock()
	if len(c.entries) >= maxCached {
		clear(c.entries)
	}
	c.entries[n.Name] = &cacheEntry{updatedAt: n.UpdatedAt, generation: n.Generation, state: n.State,
		join: join, settings: s, files: files}
	c.mu.Unlock()
	return files, nil
}

// settingsEqual compares every field that rendering reads.
func settingsEqual(a, b *node.ClusterSettings) bool {
	return a.ServerURL == b.ServerURL && a.Token == b.Token && a.InstallURL == b.InstallURL &&
		a.ExtraCloudConfig == b.ExtraCloudConfig && maps.Equal(a.InstallEnv, b.InstallEnv) &&
		slices.Equal(a.SSHAuthorizedKeys, b.SSHAuthorizedKeys)
}
