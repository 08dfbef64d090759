package kubestore

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// QueryNodes answers one page from the cache with the bbolt store's semantics: the same
// filters (NodeQuery.Matches), orders, page bounds and continue tokens (a page resumes
// after the sort key of the last node it returned, so nodes that come and go between
// pages never shift the rest).
func (s *Store) QueryNodes(ctx context.Context, q store.NodeQuery) (store.NodePage, error) {
	if err := ctxErr(ctx); err != nil {
		return store.NodePage{}, err
	}
	q, after, err := q.Normalize()
	if err != nil {
		return store.NodePage{}, err
	}
	if !q.MAC.IsZero() && q.Continue != "" {
		// A MAC names at most one node: there is never a second page.
		return store.NodePage{Nodes: []node.Node{}}, nil
	}
	type match struct {
		key []byte
		n   *node.Node
	}
	var matches []match
	s.nodes.eachCandidate(q, func(e *cachedNode) {
		if !strings.HasPrefix(e.n.Name, q.NamePrefix) || !q.Matches(&e.n) {
			return
		}
		matches = append(matches, match{key: q.SortKey(&e.n), n: &e.n})
	})
	slices.SortFunc(matches, func(a, b match) int {
		if q.Desc {
			return bytes.Compare(b.key, a.key)
		}
		return bytes.Compare(a.key, b.key)
	})
	page := store.NodePage{Nodes: []node.Node{}, Total: -1}
	if !q.NoTotal {
		page.Total = len(matches)
	}
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(matches, after, func(m match, key []byte) int {
			c := bytes.Compare(m.key, key)
			if q.Desc {
				c = -c
			}
			// Keys equal to after belong before the page: it starts after them.
			if c == 0 {
				return -1
			}
			return c
		})
	}
	for i := start; i < len(matches); i++ {
		if len(page.Nodes) == q.Limit {
			page.Continue = q.ContinueToken(matches[i-1].key)
			break
		}
		page.Nodes = append(page.Nodes, cloneNode(*matches[i].n))
	}
	return page, nil
}

// StateCounts counts nodes by state.
func (s *Store) StateCounts(ctx context.Context) (map[node.State]int, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	return s.nodes.stateCounts(), nil
}

// CountNodes counts nodes by state, for metrics.
func (s *Store) CountNodes(ctx context.Context) (map[node.State]int, error) {
	return s.StateCounts(ctx)
}

// QuorumNodes is every server in full and every other node as name, role and state.
func (s *Store) QuorumNodes(ctx context.Context) ([]node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []node.Node
	s.nodes.each(func(e *cachedNode) { out = append(out, quorumEntry(e.n)) })
	slices.SortFunc(out, func(a, b node.Node) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func quorumEntry(n node.Node) node.Node {
	if n.Role == node.RoleServer {
		return cloneNode(n)
	}
	return node.Node{Name: n.Name, Role: n.Role, State: n.State}
}

// Reservations lists every node with a static IP. The list is rebuilt only when a node's
// address, MACs, gateway, DNS or name changed since the last call.
func (s *Store) Reservations(ctx context.Context) ([]store.Reservation, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.resvMu.Lock()
	defer s.resvMu.Unlock()
	s.nodes.mu.RLock()
	gen := s.nodes.resvGen
	if s.resvOK && gen == s.resvGen {
		s.nodes.mu.RUnlock()
		return s.resvList, nil
	}
	var out []store.Reservation
	for _, e := range s.nodes.nodes.byName {
		if n := e.v.n; n.IP.IsValid() {
			out = append(out, store.Reservation{Node: n.Name, MACs: slices.Clone(n.MACs), IP: n.IP, Gateway: n.Gateway, DNS: slices.Clone(n.DNS)})
		}
	}
	s.nodes.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Reservation) int { return a.IP.Addr().Compare(b.IP.Addr()) })
	s.resvGen, s.resvList, s.resvOK = gen, out, true
	return out, nil
}
