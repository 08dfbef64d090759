package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// reconcile brings every Bootyard node's cluster status in line with its Kubernetes Node,
// writing only what changed, and fences machines that came back after deletion.
func (c *Controller) reconcile(ctx context.Context) error {
	if !c.synced.Load() {
		return nil
	}
	knodes, err := c.clusterNodes()
	if err != nil {
		return err
	}
	ix := newIndex(knodes)
	// A page at a time, not the whole inventory decoded into one slice: 100,000 nodes
	// every resync was the integration's biggest cost.
	q := store.NodeQuery{Limit: store.MaxPageLimit, NoTotal: true}
	for {
		page, err := c.inv.QueryNodes(ctx, q)
		if err != nil {
			return fmt.Errorf("list inventory: %w", err)
		}
		for i := range page.Nodes {
			c.reconcileNode(ctx, ix, &page.Nodes[i])
		}
		if page.Continue == "" {
			return nil
		}
		q.Continue = page.Continue
	}
}

func (c *Controller) reconcileNode(ctx context.Context, ix index, n *node.Node) {
	k, how := ix.match(n)
	var err error
	switch {
	case n.State == node.StateWiping || n.State == node.StateDeleted:
		if k != nil && (how == matchName || how == matchMAC) {
			err = c.fence(ctx, n, k)
		}
	case n.State == node.StateDeleting:
		// The deletion sequence owns the node; only the status is kept current.
		if k != nil {
			err = c.observe(ctx, n, k)
		}
	case k != nil:
		err = c.observe(ctx, n, k)
	default:
		err = c.vanished(ctx, n)
	}
	if err != nil && ctx.Err() == nil {
		c.log.Warn("reconcile node", slog.String("node", n.Name), slog.Any("err", err))
	}
}

// updateIfChanged is update, skipped when fn finds nothing to change on seen, the node as
// the reconcile pass read it: at steady state a pass commits nothing instead of taking
// the store's write lock for every node. fn runs again on the stored node inside the
// transaction; a node that changed after the page was read is caught by the next pass.
func (c *Controller) updateIfChanged(ctx context.Context, seen *node.Node, fn func(n *node.Node) ([]node.Event, error)) error {
	probe := *seen // fn only assigns fields: a shallow copy keeps seen as it was
	if _, err := fn(&probe); errors.Is(err, errNoChange) {
		return nil
	}
	return c.update(ctx, seen.Name, fn)
}

// observe records k's status on the Bootyard node and makes an installed, joining or
// joined (or still provisioning) node active once it is Ready.
func (c *Controller) observe(ctx context.Context, seen *node.Node, k *corev1.Node) error {
	now := c.cfg.Now()
	st := statusOf(k, now)
	return c.updateIfChanged(ctx, seen, func(n *node.Node) ([]node.Event, error) {
		var events []node.Event
		if !sameStatus(n.Cluster, st) {
			n.Cluster = &st
			events = append(events, node.NewEvent(n.Name, node.EventCluster, describeStatus(k, st), source, now))
		}
		if st.Ready && n.State == node.StateProvisioning {
			// The phone-home never arrived but the machine is in the cluster: it is installed.
			ev, err := n.Transition(node.StateInstalled, "Kubernetes Node "+k.Name+" is Ready", source, now)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
		if st.Ready && (n.State == node.StateInstalled || n.State == node.StateJoining || n.State == node.StateJoined) {
			ev, err := n.Transition(node.StateActive, "Kubernetes Node "+k.Name+" is Ready", source, now)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
		if len(events) == 0 {
			return nil, errNoChange
		}
		return events, nil
	})
}

// vanished handles a Bootyard node with no Kubernetes Node: an active one goes back to
// installed (someone deleted the Node outside Bootyard), and a stale status is dropped.
func (c *Controller) vanished(ctx context.Context, seen *node.Node) error {
	now := c.cfg.Now()
	return c.updateIfChanged(ctx, seen, func(n *node.Node) ([]node.Event, error) {
		if n.Cluster == nil && n.State != node.StateActive {
			return nil, errNoChange
		}
		n.Cluster = nil
		const why = "no Kubernetes Node matches this machine any more"
		if n.State == node.StateActive {
			ev, err := n.Transition(node.StateInstalled, why, source, now)
			if err != nil {
				return nil, err
			}
			return []node.Event{ev}, nil
		}
		n.UpdatedAt = now
		return []node.Event{node.NewEvent(n.Name, node.EventCluster, why, source, now)}, nil
	})
}
