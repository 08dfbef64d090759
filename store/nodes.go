package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

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
		plan, err := planImport(tx, spec)
		if err != nil {
			return err
		}
		if plan.same {
			// One import at a time is a request to create: a second one is a mistake worth
			// reporting. Bulk imports (ImportNodes) treat it as already done instead.
			return fmt.Errorf("import: node %s already exists with this spec: %w", spec.Name, node.ErrConflict)
		}
		out, err = s.writeImport(tx, plan, source, s.now(), nil, nil)
		if plan.prior != nil {
			before = *plan.prior
		}
		return err
	})
	if err != nil {
		return node.Node{}, err
	}
	s.updated(before, out)
	return out, nil
}

// importPlan is an import checked against the store and not yet written: checking every
// row of a bulk import before writing any is what makes it all-or-nothing.
type importPlan struct {
	spec  node.Node
	prior *node.Node // the discovered or deleted record the import takes over
	// same means the MAC already belongs to a live node imported with exactly this
	// spec: importing it again changes nothing (bulk imports are idempotent).
	same bool
	cur  node.Node
}

// planImport finds the record spec's MACs or name belong to and decides whether the
// import may proceed (ErrConflict when they belong to another live node).
func planImport(tx *bolt.Tx, spec node.Node) (importPlan, error) {
	var prior *node.Node
	for _, m := range spec.MACs {
		name := tx.Bucket(bucketMACIndex).Get(m[:])
		if name == nil {
			continue
		}
		n, err := getNode(tx, string(name))
		if err != nil {
			return importPlan{}, err
		}
		if n.State != node.StateDiscovered && n.State != node.StateDeleted {
			if SameImport(&n, &spec) {
				return importPlan{spec: spec, same: true, cur: n}, nil
			}
			return importPlan{}, fmt.Errorf("import: MAC %s belongs to node %s (%s): %w", m, n.Name, n.State, node.ErrConflict)
		}
		if prior != nil && prior.Name != n.Name {
			return importPlan{}, fmt.Errorf("import: MACs belong to two nodes, %s and %s: %w", prior.Name, n.Name, node.ErrConflict)
		}
		prior = &n
	}
	if existing, err := getNode(tx, spec.Name); err == nil && (prior == nil || existing.Name != prior.Name) {
		if existing.State != node.StateDeleted || prior != nil {
			return importPlan{}, fmt.Errorf("import: name %s is taken by a %s node: %w", spec.Name, existing.State, node.ErrConflict)
		}
		prior = &existing
	}
	return importPlan{spec: spec, prior: prior}, nil
}

// SameImport reports whether cur, a live node, is what importing spec would have made:
// the fields an import sets are equal and it owns exactly spec's MACs.
func SameImport(cur, spec *node.Node) bool {
	return cur.Name == spec.Name && slices.Equal(cur.MACs, spec.MACs) && cur.Role == spec.Role &&
		cur.IP == spec.IP && cur.Gateway == spec.Gateway && slices.Equal(cur.DNS, spec.DNS) &&
		maps.Equal(cur.Labels, spec.Labels) && slices.Equal(cur.Taints, spec.Taints) &&
		cur.Image == spec.Image && cur.Disk == spec.Disk && cur.RootDiskHints.String() == spec.RootDiskHints.String() &&
		sameBMC(cur.BMC, spec.BMC)
}

// writeImport stores the planned import p. initNeeded, when not nil, caches across the rows of
// one transaction whether a server still has to become the cluster-init node, instead of
// looking for live servers once per row.
func (s *Store) writeImport(tx *bolt.Tx, p importPlan, source string, now time.Time, initNeeded *bool, pending *[]indexEntry) (node.Node, error) {
	if p.same {
		return p.cur, nil
	}
	n := p.spec
	n.CreatedAt, n.UpdatedAt = now, now
	n.ClusterInit = false
	var events []node.Event
	if prior := p.prior; prior != nil {
		// Keep what the machine told us about itself and its history.
		n.CreatedAt = prior.CreatedAt
		n.Boot = prior.Boot
		n.Hardware = prior.Hardware // an inspection before import is the point of one
		n.LastSeen = prior.LastSeen
		n.Generation = prior.Generation
		n.State = prior.State
		for _, m := range prior.MACs {
			if !slices.Contains(n.MACs, m) {
				n.MACs = append(n.MACs, m)
			}
		}
		if err := removeNode(tx, prior, false); err != nil {
			return node.Node{}, err
		}
		if prior.Name != n.Name {
			if err := s.moveEvents(tx, prior.Name, n.Name); err != nil {
				return node.Node{}, err
			}
			if err := moveNodeSecrets(tx, prior.Name, n.Name); err != nil {
				return node.Node{}, err
			}
		}
		ev, err := n.Transition(node.StateRegistered, "imported", source, now)
		if err != nil {
			return node.Node{}, err
		}
		events = append(events, ev)
	} else {
		n.State, n.StateSince = node.StateRegistered, now
		events = append(events, node.Event{Time: now, Node: n.Name, Type: node.EventTransition,
			To: node.StateRegistered, Reason: "imported", Source: source})
	}
	if n.Role == node.RoleServer {
		var init bool
		if initNeeded != nil && !*initNeeded {
			init = false
		} else {
			var err error
			if init, err = clusterInitNeeded(tx, n.Name); err != nil {
				return node.Node{}, err
			}
		}
		n.ClusterInit = init
		if initNeeded != nil {
			*initNeeded = false // this server is live now: no later row starts the cluster
		}
	}
	if err := putNodeBatch(tx, &n, nil, pending); err != nil {
		return node.Node{}, err
	}
	return n, s.appendEvents(tx, events...)
}

// clusterInitNeeded reports whether no other live server exists, so this one must start
// the cluster (role cluster-init) rather than join it. The role index holds each server's
// state, so this reads the servers' index entries, not the inventory.
func clusterInitNeeded(tx *bolt.Tx, except string) (bool, error) {
	prefix := joinKey(string(node.RoleServer), "")
	c := tx.Bucket(bucketRoleIndex).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if string(k[len(prefix):]) == except {
			continue
		}
		if st := node.State(v); st != node.StateDiscovered && st != node.StateDeleted {
			return false, nil
		}
	}
	return true, nil
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
		// fn may change n's slices and maps in place: they must not be old's, or the
		// index update below would see no label change (sameIndexEntries).
		n.MACs, n.Labels = slices.Clone(old.MACs), maps.Clone(old.Labels)
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
			if err := moveNodeSecrets(tx, old.Name, n.Name); err != nil {
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
func putNode(tx *bolt.Tx, n *node.Node, old *node.Node) error { return putNodeBatch(tx, n, old, nil) }

// putNodeBatch is putNode that, with pending set, collects the new node's MAC and index
// entries for flushIndex instead of writing them (a bulk import, whose rows were already
// checked against the MAC index and each other).
func putNodeBatch(tx *bolt.Tx, n *node.Node, old *node.Node, pending *[]indexEntry) error {
	if err := checkMACs(tx, n, old); err != nil {
		return err
	}
	idx := tx.Bucket(bucketMACIndex)
	if old != nil {
		for _, m := range old.MACs {
			if err := idx.Delete(m[:]); err != nil {
				return err
			}
		}
	}
	reindex := old == nil || !sameIndexEntries(old, n)
	if old != nil && reindex {
		if err := unindexNode(tx, old); err != nil {
			return err
		}
	}
	for _, m := range n.MACs {
		if pending != nil {
			*pending = append(*pending, indexEntry{bucketMACIndex, bytes.Clone(m[:]), []byte(n.Name)})
			continue
		}
		if err := idx.Put(m[:], []byte(n.Name)); err != nil {
			return err
		}
	}
	if old == nil {
		if existing := tx.Bucket(bucketNodes).Get([]byte(n.Name)); existing != nil {
			return fmt.Errorf("name %s: %w", n.Name, node.ErrConflict)
		}
	}
	if reindex {
		if err := indexNode(tx, n, pending); err != nil {
			return err
		}
	}
	if err := bumpReservations(tx, old, n); err != nil {
		return err
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

// checkMACs refuses (ErrConflict) a MAC of n that another node owns; old is n's previous
// version (nil for a new record), whose MACs n may keep.
func checkMACs(tx *bolt.Tx, n, old *node.Node) error {
	idx := tx.Bucket(bucketMACIndex)
	for _, m := range n.MACs {
		if owner := idx.Get(m[:]); owner != nil && (old == nil || string(owner) != old.Name) {
			return fmt.Errorf("MAC %s belongs to node %s: %w", m, owner, node.ErrConflict)
		}
	}
	return nil
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
	if err := unindexNode(tx, n); err != nil {
		return err
	}
	if err := bumpReservations(tx, n, nil); err != nil {
		return err
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
	if err := deleteNodeSecrets(tx, n.Name); err != nil {
		return err
	}
	if err := deleteEventTotals(tx, n.Name); err != nil {
		return err
	}
	if tx.Bucket(bucketEvents).Bucket([]byte(n.Name)) != nil {
		return tx.Bucket(bucketEvents).DeleteBucket([]byte(n.Name))
	}
	return nil
}
