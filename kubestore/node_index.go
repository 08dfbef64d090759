package kubestore

import (
	"k8s.io/apimachinery/pkg/selection"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The cache's secondary indexes, for QueryNodes: a query by state, label or MAC visits
// the nodes that can match instead of every node (the bbolt store's index buckets do the
// same). They live beside the cache's newest-copy map rather than in a client-go Indexer:
// the map also holds this replica's own writes before the watch brings them, and an
// index of the informer's store would not see those.
type nameSet map[string]struct{}

// nameIndex maps an index key (a state, a label key=value, a label key) to its nodes.
type nameIndex map[string]nameSet

func (m nameIndex) add(key, name string) {
	set, ok := m[key]
	if !ok {
		set = nameSet{}
		m[key] = set
	}
	set[name] = struct{}{}
}

func (m nameIndex) drop(key, name string) {
	if set, ok := m[key]; ok {
		delete(set, name)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

// labelPair is a label's index key: key and value cannot hold "=", so it is unambiguous.
func labelPair(k, v string) string { return k + "=" + v }

// index adds n to the state and label indexes; unindex removes it. Callers hold c.mu.
func (c *nodeCache) index(n *node.Node) {
	c.byState.add(string(n.State), n.Name)
	for k, v := range n.Labels {
		c.byLabel.add(labelPair(k, v), n.Name)
		c.byLabelKey.add(k, n.Name)
	}
}

func (c *nodeCache) unindexQuery(n *node.Node) {
	c.byState.drop(string(n.State), n.Name)
	for k, v := range n.Labels {
		c.byLabel.drop(labelPair(k, v), n.Name)
		c.byLabelKey.drop(k, n.Name)
	}
}

// eachCandidate calls fn, under the read lock, for every node that q's indexed filters
// (a MAC, the state, a selector's =, ==, in or exists requirement) leave, taking the
// narrowest of them; for every node when none applies. fn still checks the whole query.
func (c *nodeCache) eachCandidate(q store.NodeQuery, fn func(e *cachedNode)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best []nameSet
	size := -1
	consider := func(sets ...nameSet) {
		n := 0
		for _, s := range sets {
			n += len(s)
		}
		if size < 0 || n < size {
			best, size = sets, n
		}
	}
	if !q.MAC.IsZero() {
		set := nameSet{}
		if name, ok := c.byMAC[q.MAC]; ok {
			set[name] = struct{}{}
		}
		consider(set)
	}
	if q.State != "" {
		consider(c.byState[string(q.State)])
	}
	if q.Selector != nil {
		reqs, _ := q.Selector.Requirements()
		for _, r := range reqs {
			switch r.Operator() {
			case selection.Equals, selection.DoubleEquals, selection.In:
				var sets []nameSet
				for v := range r.Values() {
					sets = append(sets, c.byLabel[labelPair(r.Key(), v)])
				}
				consider(sets...)
			case selection.Exists:
				consider(c.byLabelKey[r.Key()])
			}
		}
	}
	if size < 0 {
		for _, e := range c.nodes.byName {
			fn(e.v)
		}
		return
	}
	for _, set := range best {
		for name := range set {
			if e, ok := c.nodes.byName[name]; ok {
				fn(e.v)
			}
		}
	}
}

// stateCounts counts the nodes in each state from the state index.
func (c *nodeCache) stateCounts() map[node.State]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[node.State]int, len(c.byState))
	for st, set := range c.byState {
		out[node.State(st)] = len(set)
	}
	return out
}
