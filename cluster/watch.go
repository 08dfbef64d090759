package cluster

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"

	"github.com/bootyard/bootyard/node"
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
	nodes, err := c.inv.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list inventory: %w", err)
	}
	for i := range nodes {
		n := &nodes[i]
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
				err = c.observe(ctx, n.Name, k)
			}
		case k != nil:
			err = c.observe(ctx, n.Name, k)
		default:
			err = c.vanished(ctx, n.Name)
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("reconcile node", slog.String("node", n.Name), slog.Any("err", err))
		}
	}
	return nil
}

// observe records k's status on the Bootyard node and makes an installed, joining or
// joined (or still provisioning) node active once it is Ready.
func (c *Controller) observe(ctx context.Context, name string, k *corev1.Node) error {
	now := c.cfg.Now()
	st := statusOf(k, now)
	return c.update(ctx, name, func(n *node.Node) ([]node.Event, error) {
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
func (c *Controller) vanished(ctx context.Context, name string) error {
	now := c.cfg.Now()
	return c.update(ctx, name, func(n *node.Node) ([]node.Event, error) {
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
