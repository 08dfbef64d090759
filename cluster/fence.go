package cluster

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
)

// fence removes k, the Kubernetes Node of a machine Bootyard is wiping or has deleted:
// it registered again (old disk, a wipe that has not run yet) and must not take work.
// Cordoning first keeps the scheduler off it should the delete be refused.
func (c *Controller) fence(ctx context.Context, n *node.Node, k *corev1.Node) error {
	if err := c.cordon(ctx, k.Name); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("fence %s: %w", k.Name, err)
	}
	// The UID precondition deletes exactly the object seen, never a newer one.
	err := c.client.CoreV1().Nodes().Delete(ctx, k.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &k.UID}})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		// Already gone (the informer has not caught up), or replaced: the next pass looks again.
		return nil
	case err != nil:
		c.event(ctx, n.Name, node.EventWarning, fmt.Sprintf("fence: Kubernetes Node %s registered again while the node is %s; deleting it failed: %v", k.Name, n.State, err))
		return fmt.Errorf("fence %s: %w", k.Name, err)
	}
	c.log.Warn("fenced a deleted machine that rejoined the cluster", slog.String("node", n.Name), slog.String("k8sNode", k.Name), slog.String("state", string(n.State)))
	c.event(ctx, n.Name, node.EventWarning, fmt.Sprintf("fence: Kubernetes Node %s registered again while the node is %s; cordoned and deleted it", k.Name, n.State))
	c.powerOffRejoiner(ctx, n)
	return nil
}

// powerOffRejoiner powers off, through its BMC, a machine fenced a second time: one
// rejoin can be a wipe that has not run yet, a second means the machine keeps booting its
// old disk, and only taking its power stops it from coming back.
func (c *Controller) powerOffRejoiner(ctx context.Context, n *node.Node) {
	c.mu.Lock()
	if c.fences == nil {
		c.fences = map[string]int{}
	}
	c.fences[n.Name]++
	times := c.fences[n.Name]
	c.mu.Unlock()
	if times < 2 || n.BMC == nil || c.cfg.OutOfBand == nil {
		return
	}
	why := fmt.Sprintf("fenced %d times: the machine keeps rejoining the cluster", times)
	if err := c.cfg.OutOfBand.PowerOff(ctx, n.Name, why); err != nil {
		c.log.Warn("power off a rejoining machine", slog.String("node", n.Name), slog.Any("err", err))
	}
}
