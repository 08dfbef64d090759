package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// ImportNode registers a machine. A MAC that belongs to a discovered node (or a deleted
// one) turns that record into the registered node and keeps its history; any other MAC
// or name already claimed is ErrConflict. The first server becomes the cluster-init node.
func (s *Store) ImportNode(ctx context.Context, spec node.Node, source string) (node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	spec.State = node.StateRegistered
	if err := spec.Validate(); err != nil {
		return node.Node{}, fmt.Errorf("import: %w", err)
	}
	var out, before node.Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		now := s.now()
		// Find an existing record these MACs or this name belong to.
		var prior *node.Node
		for _, m := range spec.MACs {
			name := tx.Bucket(bucketMACIndex).Get(m[:])
			if name == nil {
				continue
			}
			n, err := getNode(tx, string(name))
			if err != nil {
				return err
			}
			if n.State != node.StateDiscovered && n.State != node.StateDeleted {
				return fmt.Errorf("import: MAC %s belongs to node %s (%s): %w", m, n.Name, n.State, node.ErrConflict)
			}
			if prior != nil && prior.Name != n.Name {
				return fmt.Errorf("import: MACs belong to two nodes, %s and %s: %w", prior.Name, n.Name, node.ErrConflict)
			}
			prior = &n
		}
		if existing, err := getNode(tx, spec.Name); err == nil && (prior == nil || existing.Name != prior.Name) {
			if existing.State != node.StateDeleted || prior != nil {
				return fmt.Errorf("import: name %s is taken by a %s node: %w", spec.Name, existing.State, node.ErrConflict)
			}
			prior = &existing
		}

		n := spec
		n.CreatedAt, n.UpdatedAt = now, now
		n.ClusterInit = false
		var events []node.Event
		if prior != nil {
			// Keep what the machine told us about itself and its history.
			n.CreatedAt = prior.CreatedAt
			n.Boot = prior.Boot
			n.LastSeen = prior.LastSeen
			n.Generation = prior.Generation
			n.State = prior.State
			for _, m := range prior.MACs {
				if !slices.Contains(n.MACs, m) {
					n.MACs = append(n.MACs, m)
				}
			}
			if err := removeNode(tx, prior, false); err != nil {
				return err
			}
			if prior.Name != n.Name {
				if err := s.moveEvents(tx, prior.Name, n.Name); err != nil {
					return err
				}
			}
			ev, err := n.Transition(node.StateRegistered, "imported", source, now)
			if err != nil {
				return err
			}
			events = append(events, ev)
		} else {
			n.State, n.StateSince = node.StateRegistered, now
			events = append(events, node.Event{Time: now, Node: n.Name, Type: node.EventTransition,
				To: node.StateRegistered, Reason: "imported", Source: source})
		}
		if n.Role == node.RoleServer {
			init, err := clusterInitNeeded(tx, n.Name)
			if err != nil {
				return err
			}
			n.ClusterInit = init
		}
		if err := putNode(tx, &n, nil); err != nil {
			return err
		}
		out = n
		if prior != nil {
			before = *prior
		}
		return s.appendEvents(tx, events...)
	})
	if err != nil {
		return node.Node{}, err
	}
	s.updated(before, out)
	return out, nil
}

// clusterInitNeeded reports whether no other live server exists, so this one must start
// the cluster (role cluster-init) rather than join it.
func clusterInitNeeded(tx *bolt.Tx, except string) (bool, error) {
	needed := true
	err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		if string(k) == except {
			return nil
		}
		var n node.Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", k, err)
		}
		if n.Role == node.RoleServer && n.State != node.StateDiscovered && n.State != node.StateDeleted {
			needed = false
		}
		return nil
	})
	return needed, err
}

// GetNode finds a node by name or, if ref parses as one, by MAC.
func (s *Store) GetNode(ctx context.Context, ref string) (node.Node, error) {
	if mac, err := node.ParseMAC(ref); err == nil {
		// Twelve hex digits are both a bare MAC and a valid node name ("c0ffee000001"):
		// when no node owns that MAC, the ref may still be a name.
		if n, err := s.NodeByMAC(ctx, mac); !errors.Is(err, node.ErrNotFound) {
			return n, err
		}
	}
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	var n node.Node
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = getNode(tx, ref)
		return err
	})
	return n, err
}

// NodeByMAC finds the node that owns mac.
func (s *Store) NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	var n node.Node
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketMACIndex).Get(mac[:])
		if name == nil {
			return fmt.Errorf("mac %s: %w", mac, node.ErrNotFound)
		}
		var err error
		n, err = getNode(tx, string(name))
		return err
	})
	return n, err
}

// ListNodes returns every node, sorted by name.
func (s *Store) ListNodes(ctx context.Context) ([]node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []node.Node
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n node.Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %s: %w", k, err)
			}
			out = append(out, n)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// UpdateFunc changes a node in place and returns the events to record with it. Returning
// an error aborts the transaction: nothing is written.
type UpdateFunc func(n *node.Node) ([]node.Event, error)

// UpdateNode loads the node named name, applies fn, validates the result and writes the
// node, its index changes and fn's events in one transaction. MAC and name changes are
// checked against the indexes (ErrConflict).
func (s *Store) UpdateNode(ctx context.Context, name string, fn UpdateFunc) (node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	var out, before node.Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, err := getNode(tx, name)
		before = old
		if err != nil {
			return err
		}
		n := old
		n.MACs = slices.Clone(old.MACs)
		events, err := fn(&n)
		if err != nil {
			return err
		}
		if err := n.Validate(); err != nil {
			return err
		}
		if !n.UpdatedAt.After(old.UpdatedAt) {
			n.UpdatedAt = s.now()
		}
		if n.Name != old.Name {
			if _, err := getNode(tx, n.Name); err == nil {
				return fmt.Errorf("rename %s → %s: %w", old.Name, n.Name, node.ErrConflict)
			}
			if err := tx.Bucket(bucketNodes).Delete([]byte(old.Name)); err != nil {
				return err
			}
			if err := s.moveEvents(tx, old.Name, n.Name); err != nil {
				return err
			}
			for i := range events {
				events[i].Node = n.Name
			}
		}
		if err := putNode(tx, &n, &old); err != nil {
			return err
		}
		out = n
		return s.appendEvents(tx, events...)
	})
	if err == nil {
		s.updated(before, out)
	}
	return out, err
}

// RemoveNode deletes a node, its index entries and its events, after writing nothing
// else: for nodes that never started installing, which have nothing to wipe.
func (s *Store) RemoveNode(ctx context.Context, name string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		n, err := getNode(tx, name)
		if err != nil {
			return err
		}
		return removeNode(tx, &n, true)
	})
}

func getNode(tx *bolt.Tx, name string) (node.Node, error) {
	v := tx.Bucket(bucketNodes).Get([]byte(name))
	if v == nil {
		return node.Node{}, fmt.Errorf("node %q: %w", name, node.ErrNotFound)
	}
	var n node.Node
	if err := json.Unmarshal(v, &n); err != nil {
		return node.Node{}, fmt.Errorf("decode node %s: %w", name, err)
	}
	return n, nil
}

// putNode writes n and brings the MAC index in line with it; old is the previous version
// (nil for a new record). A MAC owned by another node is ErrConflict.
func putNode(tx *bolt.Tx, n *node.Node, old *node.Node) error {
	idx := tx.Bucket(bucketMACIndex)
	for _, m := range n.MACs {
		if owner := idx.Get(m[:]); owner != nil && (old == nil || string(owner) != old.Name) {
			return fmt.Errorf("MAC %s belongs to node %s: %w", m, owner, node.ErrConflict)
		}
	}
	if old != nil {
		for _, m := range old.MACs {
			if err := idx.Delete(m[:]); err != nil {
				return err
			}
		}
	}
	for _, m := range n.MACs {
		if err := idx.Put(m[:], []byte(n.Name)); err != nil {
			return err
		}
	}
	if old == nil {
		if existing := tx.Bucket(bucketNodes).Get([]byte(n.Name)); existing != nil {
			return fmt.Errorf("name %s: %w", n.Name, node.ErrConflict)
		}
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode node %s: %w", n.Name, err)
	}
	if err := indexDiscovered(tx, old, n); err != nil {
		return fmt.Errorf("index node %s: %w", n.Name, err)
	}
	return tx.Bucket(bucketNodes).Put([]byte(n.Name), b)
}

func removeNode(tx *bolt.Tx, n *node.Node, dropEvents bool) error {
	idx := tx.Bucket(bucketMACIndex)
	for _, m := range n.MACs {
		if owner := idx.Get(m[:]); owner != nil && string(owner) == n.Name {
			if err := idx.Delete(m[:]); err != nil {
				return err
			}
		}
	}
	if err := tx.Bucket(bucketNodes).Delete([]byte(n.Name)); err != nil {
		return err
	}
	if err := indexDiscovered(tx, n, nil); err != nil {
		return fmt.Errorf("unindex node %s: %w", n.Name, err)
	}
	if !dropEvents {
		return nil
	}
	if err := deleteEventTotals(tx, n.Name); err != nil {
		return err
	}
	if tx.Bucket(bucketEvents).Bucket([]byte(n.Name)) != nil {
		return tx.Bucket(bucketEvents).DeleteBucket([]byte(n.Name))
	}
	return nil
}
