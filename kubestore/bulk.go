package kubestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The API server has no multi-object transaction, so the bulk forms here are the single
// forms in a loop: each node is its own conditional write (two replicas still cannot both
// win one node's transition), and a failure of one node is that node's result. Only a
// cancelled context ends the call early; the nodes before it stay changed, as with bbolt's
// batches after a store error.

// UpdateNodes is UpdateNode for each name; fn must not rename a node.
func (s *Store) UpdateNodes(ctx context.Context, names []string, fn store.UpdateFunc) ([]store.BulkResult, error) {
	out := make([]store.BulkResult, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		n, err := s.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
			events, err := fn(n)
			if err == nil && n.Name != name {
				err = fmt.Errorf("rename %s → %s: %w: not in a bulk change", name, n.Name, node.ErrInvalid)
			}
			return events, err
		})
		out = append(out, store.BulkResult{Name: name, Node: n, Err: err})
	}
	return out, nil
}

// DeleteNodes is DeleteNode for each name, confirmed by name (the caller had the operator
// confirm the whole selection). Quorum is checked per deletion against the live inventory,
// so a server the deletions before it made unsafe to remove is refused.
func (s *Store) DeleteNodes(ctx context.Context, names []string, opts node.DeleteOptions) ([]store.BulkResult, error) {
	out := make([]store.BulkResult, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		o := opts
		o.Confirm = name
		n, removed, err := s.DeleteNode(ctx, name, o)
		out = append(out, store.BulkResult{Name: name, Node: n, Removed: removed, Err: err})
	}
	return out, nil
}

// QueryNodesJSON is QueryNodes with each node encoded as the API sends it.
func (s *Store) QueryNodesJSON(ctx context.Context, q store.NodeQuery) (store.RawNodePage, error) {
	page, err := s.QueryNodes(ctx, q)
	if err != nil {
		return store.RawNodePage{}, err
	}
	items := make([]json.RawMessage, 0, len(page.Nodes))
	for i := range page.Nodes {
		b, err := json.Marshal(&page.Nodes[i])
		if err != nil {
			return store.RawNodePage{}, fmt.Errorf("encode node %s: %w", page.Nodes[i].Name, err)
		}
		items = append(items, b)
	}
	return store.RawNodePage{Items: items, Continue: page.Continue, Total: page.Total}, nil
}

// QueryNodeNames is QueryNodes as names.
func (s *Store) QueryNodeNames(ctx context.Context, q store.NodeQuery) (store.NamePage, error) {
	page, err := s.QueryNodes(ctx, q)
	if err != nil {
		return store.NamePage{}, err
	}
	names := make([]string, len(page.Nodes))
	for i, n := range page.Nodes {
		names[i] = n.Name
	}
	return store.NamePage{Names: names, Continue: page.Continue, Total: page.Total}, nil
}
