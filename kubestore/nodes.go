package kubestore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The REST calls on BootyardNode objects. Each returns the object as the API server
// stored it and records it in the cache.

func (s *Store) getNodeObj(ctx context.Context, name string) (*v1alpha1.BootyardNode, error) {
	o := &v1alpha1.BootyardNode{}
	if err := s.rc.Get().Namespace(s.ns).Resource(resNodes).Name(name).Do(ctx).Into(o); err != nil {
		if apierrors.IsNotFound(err) {
			s.nodes.remove(name, 0)
			return nil, fmt.Errorf("node %q: %w", name, node.ErrNotFound)
		}
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	s.nodes.put(o)
	return o, nil
}

func (s *Store) createNodeObj(ctx context.Context, o *v1alpha1.BootyardNode) (*v1alpha1.BootyardNode, error) {
	out := &v1alpha1.BootyardNode{}
	if err := s.rc.Post().Namespace(s.ns).Resource(resNodes).Body(o).Do(ctx).Into(out); err != nil {
		return nil, err
	}
	s.nodes.put(out)
	return out, nil
}

// writeNodeObj writes o's spec (when it differs from base's) and then its status (when
// that differs), each conditional on the resourceVersion the previous write left. The
// status subresource is a second request: Bootyard writes the spec first because a
// status always follows the spec it was decided on.
func (s *Store) writeNodeObj(ctx context.Context, o, base *v1alpha1.BootyardNode) (*v1alpha1.BootyardNode, error) {
	cur := base
	if base == nil || !reflect.DeepEqual(o.Spec, base.Spec) || !reflect.DeepEqual(o.Labels, base.Labels) || !maps.Equal(o.Annotations, base.Annotations) {
		out := &v1alpha1.BootyardNode{}
		if err := s.rc.Put().Namespace(s.ns).Resource(resNodes).Name(o.Name).Body(o).Do(ctx).Into(out); err != nil {
			return nil, err
		}
		s.nodes.put(out)
		cur = out
	}
	if base != nil && reflect.DeepEqual(o.Status, base.Status) {
		return cur, nil
	}
	st := cur.DeepCopy()
	st.Status = o.Status
	out := &v1alpha1.BootyardNode{}
	if err := s.rc.Put().Namespace(s.ns).Resource(resNodes).Name(o.Name).SubResource("status").Body(st).Do(ctx).Into(out); err != nil {
		return nil, err
	}
	s.nodes.put(out)
	return out, nil
}

// deleteNodeObj deletes the object if it is still at resourceVersion rv.
func (s *Store) deleteNodeObj(ctx context.Context, name, rv string) error {
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}
	if err := s.rc.Delete().Namespace(s.ns).Resource(resNodes).Name(name).Body(&opts).Do(ctx).Error(); err != nil {
		return err
	}
	s.nodes.remove(name, resourceVersion(rv))
	return nil
}

// createNode creates a new object for n: the object, then its status (a create drops
// the status of a resource with a status subresource). replacing names the node whose
// MACs n takes over (a discovered record, a rename's old name), "" for none.
func (s *Store) createNode(ctx context.Context, n *node.Node, replacing string) (*v1alpha1.BootyardNode, error) {
	o := s.fromNode(n, nil)
	created, err := s.createNodeObj(ctx, o)
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("name %s: %w", n.Name, node.ErrConflict)
		}
		return nil, fmt.Errorf("create node %s: %w", n.Name, kindErr(err))
	}
	if err := s.claimMACs(ctx, created, replacing); err != nil {
		return nil, err
	}
	o = s.fromNode(n, created)
	out, err := s.writeNodeObj(ctx, o, created)
	if err != nil {
		return nil, fmt.Errorf("create node %s: status: %w", n.Name, kindErr(err))
	}
	return out, nil
}

// ImportNode registers a machine, as store.Store.ImportNode does: a discovered or
// deleted record of its MAC (or name) is taken over with its history.
func (s *Store) ImportNode(ctx context.Context, spec node.Node, source string) (node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	spec.State = node.StateRegistered
	if err := spec.Validate(); err != nil {
		return node.Node{}, fmt.Errorf("import: %w", err)
	}
	plan, err := s.planImport(spec)
	if err != nil {
		return node.Node{}, err
	}
	if plan.same {
		return node.Node{}, fmt.Errorf("import: node %s already exists with this spec: %w", spec.Name, node.ErrConflict)
	}
	return s.writeImport(ctx, plan, source, s.clusterInitNeeded(spec.Name))
}

type importPlan struct {
	spec  node.Node
	prior *cachedNode
	same  bool
	cur   node.Node
}

// planImport checks spec against the cache: a MAC or name of a live node is a conflict,
// unless that node is exactly this import (same); a discovered or deleted record of them
// is taken over (prior).
func (s *Store) planImport(spec node.Node) (importPlan, error) {
	var prior *cachedNode
	for _, m := range spec.MACs {
		e, ok := s.nodes.byMACName(m)
		if !ok {
			continue
		}
		n := e.n
		if n.State != node.StateDiscovered && n.State != node.StateDeleted {
			if store.SameImport(&n, &spec) {
				return importPlan{spec: spec, same: true, cur: cloneNode(n)}, nil
			}
			return importPlan{}, fmt.Errorf("import: MAC %s belongs to node %s (%s): %w", m, n.Name, n.State, node.ErrConflict)
		}
		if prior != nil && prior.n.Name != n.Name {
			return importPlan{}, fmt.Errorf("import: MACs belong to two nodes, %s and %s: %w", prior.n.Name, n.Name, node.ErrConflict)
		}
		prior = e
	}
	if existing, ok := s.nodes.get(spec.Name); ok && (prior == nil || existing.n.Name != prior.n.Name) {
		if existing.n.State != node.StateDeleted || prior != nil {
			return importPlan{}, fmt.Errorf("import: name %s is taken by a %s node: %w", spec.Name, existing.n.State, node.ErrConflict)
		}
		prior = existing
	}
	return importPlan{spec: spec, prior: prior}, nil
}

// clusterInitNeeded reports whether no live server other than except exists.
func (s *Store) clusterInitNeeded(except string) bool {
	need := true
	s.nodes.each(func(e *cachedNode) {
		if e.n.Name != except && e.n.Role == node.RoleServer && e.n.State != node.StateDiscovered && e.n.State != node.StateDeleted {
			need = false
		}
	})
	return need
}

func (s *Store) writeImport(ctx context.Context, p importPlan, source string, initNeeded bool) (node.Node, error) {
	if p.same {
		return p.cur, nil
	}
	now := s.now()
	n := p.spec
	n.CreatedAt, n.UpdatedAt = now, now
	n.ClusterInit = n.Role == node.RoleServer && initNeeded
	var before node.Node
	var ev node.Event
	if p.prior == nil {
		n.State, n.StateSince = node.StateRegistered, now
		ev = node.Event{Time: now, Node: n.Name, Type: node.EventTransition, To: node.StateRegistered, Reason: "imported", Source: source}
		if _, err := s.createNode(ctx, &n, ""); err != nil {
			return node.Node{}, fmt.Errorf("import: %w", err)
		}
	} else {
		prior := p.prior.n
		before = cloneNode(prior)
		n.CreatedAt, n.Boot, n.LastSeen, n.Generation, n.State = prior.CreatedAt, prior.Boot, prior.LastSeen, prior.Generation, prior.State
		for _, m := range prior.MACs {
			if !slices.Contains(n.MACs, m) {
				n.MACs = append(n.MACs, m)
			}
		}
		var err error
		if ev, err = n.Transition(node.StateRegistered, "imported", source, now); err != nil {
			return node.Node{}, err
		}
		if prior.Name == n.Name {
			if _, err := s.writeNodeObj(ctx, s.fromNode(&n, p.prior.obj), p.prior.obj); err != nil {
				return node.Node{}, fmt.Errorf("import %s: %w", n.Name, kindErr(err))
			}
		} else if err := s.rename(ctx, p.prior.obj, &n); err != nil {
			return node.Node{}, fmt.Errorf("import %s: %w", n.Name, err)
		}
	}
	if n.ClusterInit {
		settled, err := s.settleClusterInit(ctx, n)
		if err != nil {
			return node.Node{}, fmt.Errorf("import %s: %w", n.Name, err)
		}
		n = settled
	}
	if err := s.events.append(ctx, ev); err != nil {
		return node.Node{}, err
	}
	s.updated(before, n)
	return n, nil
}

// rename moves the record of old to n.Name: the new object first (a taken name fails
// before anything changed), then the history and the Secret, then the old object,
// conditional on the version it was read at.
func (s *Store) rename(ctx context.Context, old *v1alpha1.BootyardNode, n *node.Node) error {
	if _, err := s.createNode(ctx, n, old.Name); err != nil {
		return err
	}
	if err := s.events.move(ctx, old.Name, n.Name); err != nil {
		return err
	}
	if err := s.moveNodeSecret(ctx, old.Name, n.Name); err != nil {
		return err
	}
	if err := s.deleteNodeObj(ctx, old.Name, old.ResourceVersion); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove %s after its rename: %w", old.Name, kindErr(err))
	}
	return nil
}

// GetNode finds a node by name or, if ref parses as one, by MAC.
func (s *Store) GetNode(ctx context.Context, ref string) (node.Node, error) {
	if mac, err := node.ParseMAC(ref); err == nil {
		if n, err := s.NodeByMAC(ctx, mac); !errors.Is(err, node.ErrNotFound) {
			return n, err
		}
	}
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	e, ok := s.nodes.get(ref)
	if !ok {
		return node.Node{}, fmt.Errorf("node %q: %w", ref, node.ErrNotFound)
	}
	return cloneNode(e.n), nil
}

// NodeByMAC finds the node that owns mac, from the cache's MAC index.
func (s *Store) NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, error) {
	n, _, err := s.nodeByMAC(ctx, mac)
	return n, err
}

func (s *Store) nodeByMAC(ctx context.Context, mac node.MAC) (node.Node, uint64, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, 0, err
	}
	e, ok := s.nodes.byMACName(mac)
	if !ok {
		return node.Node{}, 0, fmt.Errorf("mac %s: %w", mac, node.ErrNotFound)
	}
	return cloneNode(e.n), e.rv, nil
}

// NewNodeCache returns the store itself as the iPXE path's versioned reader: the
// informer cache already saves the decoding, and the resourceVersion is the version.
func (s *Store) NewNodeCache() store.VersionedNodes { return versioned{s} }

type versioned struct{ s *Store }

func (v versioned) NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, uint64, error) {
	return v.s.nodeByMAC(ctx, mac)
}

// ListNodes returns every node, sorted by name.
func (s *Store) ListNodes(ctx context.Context) ([]node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []node.Node
	s.nodes.each(func(e *cachedNode) { out = append(out, cloneNode(e.n)) })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// UpdateNode applies fn to the node and writes it conditional on the resourceVersion
// it read. On a conflict (another replica, or another goroutine, wrote first) it reads
// the node again from the API server and applies fn afresh, so fn always decides on the
// current node: of two writers racing one transition, the second sees the first's
// result and fn refuses it. fn's events are written after the node.
func (s *Store) UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, err
	}
	e, ok := s.nodes.get(name)
	var obj *v1alpha1.BootyardNode
	if ok {
		obj = e.obj
	}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		if obj == nil {
			var err error
			if obj, err = s.getNodeObj(ctx, name); err != nil {
				return node.Node{}, err
			}
		}
		old, err := toNode(obj)
		if err != nil {
			return node.Node{}, err
		}
		n := cloneNode(old)
		events, err := fn(&n)
		if err != nil {
			return node.Node{}, err
		}
		if err := n.Validate(); err != nil {
			return node.Node{}, err
		}
		if !n.UpdatedAt.After(old.UpdatedAt) {
			n.UpdatedAt = s.now()
		}
		if n.Name != old.Name {
			if err := s.checkMACs(&n, old.Name); err != nil {
				return node.Node{}, err
			}
			if err := s.rename(ctx, obj, &n); err != nil {
				return node.Node{}, fmt.Errorf("rename %s → %s: %w", old.Name, n.Name, err)
			}
			for i := range events {
				events[i].Node = n.Name
			}
		} else {
			if err := s.checkMACs(&n, old.Name); err != nil {
				return node.Node{}, err
			}
			if _, err := s.writeNodeObj(ctx, s.fromNode(&n, obj), obj); err != nil {
				if apierrors.IsConflict(err) {
					obj = nil
					continue
				}
				return node.Node{}, fmt.Errorf("update node %s: %w", name, kindErr(err))
			}
		}
		if err := s.events.append(ctx, events...); err != nil {
			return node.Node{}, err
		}
		s.updated(old, n)
		return n, nil
	}
	return node.Node{}, fmt.Errorf("update node %s: %w: %w", name, errTooManyConflicts, node.ErrConflict)
}

// checkMACs refuses a MAC another node owns (by the cache's index).
func (s *Store) checkMACs(n *node.Node, self string) error {
	for _, m := range n.MACs {
		if e, ok := s.nodes.byMACName(m); ok && e.n.Name != self {
			return fmt.Errorf("MAC %s belongs to node %s: %w", m, e.n.Name, node.ErrConflict)
		}
	}
	return nil
}

// RemoveNode deletes a node, its history and its Secret.
func (s *Store) RemoveNode(ctx context.Context, name string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	obj, err := s.getNodeObj(ctx, name)
	if err != nil {
		return err
	}
	return s.removeNode(ctx, obj)
}

func (s *Store) removeNode(ctx context.Context, obj *v1alpha1.BootyardNode) error {
	if err := s.deleteNodeObj(ctx, obj.Name, obj.ResourceVersion); err != nil {
		return fmt.Errorf("remove node %s: %w", obj.Name, kindErr(err))
	}
	if err := s.events.drop(ctx, obj.Name); err != nil {
		return err
	}
	return s.dropNodeSecret(ctx, obj.Name)
}

func (s *Store) updated(before, after node.Node) {
	if s.onUpdate != nil {
		s.onUpdate(before, after)
	}
}

// patchMeta is a merge patch of metadata only, for the quorum epoch.
func patchMeta(annotations map[string]string, rv string) ([]byte, types.PatchType) {
	b := fmt.Appendf(nil, `{"metadata":{"resourceVersion":%q,"annotations":{`, rv)
	first := true
	for k, v := range annotations {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = fmt.Appendf(b, "%q:%q", k, v)
	}
	b = append(b, "}}}"...)
	return b, types.MergePatchType
}
