package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
)

// cordon marks a Node unschedulable (a no-op when it already is).
func (c *Controller) cordon(ctx context.Context, name string) error {
	_, err := c.client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType,
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	return err
}

// drainResult counts what a drain did.
type drainResult struct {
	Evicted int // pods the Eviction API accepted
	Deleted int // pods deleted outright because --force was given
	Left    int // pods on a down node, already terminating, that no kubelet will confirm
}

func (r drainResult) String() string {
	s := fmt.Sprintf("%d pods evicted", r.Evicted)
	if r.Deleted > 0 {
		s += fmt.Sprintf(", %d deleted after the drain timeout (forced)", r.Deleted)
	}
	if r.Left > 0 {
		s += fmt.Sprintf(", %d left terminating on the unreachable node", r.Left)
	}
	return s
}

// drain evicts every pod on the Node through the Eviction API, so PodDisruptionBudgets
// are honoured: a refused eviction (429) is retried until DrainTimeout. Then, if force
// says so, the pods still there are deleted; otherwise the drain fails naming them.
func (c *Controller) drain(ctx context.Context, nodeName string, force func() bool) (drainResult, error) {
	var res drainResult
	deadline := c.cfg.Now().Add(c.cfg.DrainTimeout)
	evicted, left := map[types.UID]bool{}, map[types.UID]bool{}
	for {
		pods, err := c.podsToDrain(ctx, nodeName)
		if err != nil {
			return res, err
		}
		down := c.nodeDown(nodeName)
		var waiting []string // pods still there, with why
		for i := range pods {
			p := &pods[i]
			if p.DeletionTimestamp != nil {
				if down && c.cfg.Now().After(p.DeletionTimestamp.Time) {
					// No kubelet will confirm this deletion; waiting longer changes nothing.
					if !left[p.UID] {
						left[p.UID] = true
						res.Left++
					}
					continue
				}
				waiting = append(waiting, podRef(p)+" (terminating)")
				continue
			}
			err := c.client.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			})
			switch {
			case err == nil:
				if !evicted[p.UID] {
					evicted[p.UID] = true
					res.Evicted++
				}
				waiting = append(waiting, podRef(p)+" (evicted, terminating)")
			case apierrors.IsNotFound(err):
			case apierrors.IsTooManyRequests(err):
				// 429: a PodDisruptionBudget allows no disruption now.
				waiting = append(waiting, podRef(p)+" (disruption budget: "+budgetReason(err)+")")
			default:
				return res, fmt.Errorf("evict %s: %w", podRef(p), err)
			}
		}
		if len(waiting) == 0 {
			return res, nil
		}
		if !c.cfg.Now().Before(deadline) {
			if !force() {
				return res, fmt.Errorf("drain timed out after %s with %d pods left: %s (use --force to delete them)",
					c.cfg.DrainTimeout, len(waiting), strings.Join(waiting, ", "))
			}
			n, err := c.deletePods(ctx, nodeName)
			res.Deleted += n
			return res, err
		}
		wait := min(c.cfg.EvictionRetry, deadline.Sub(c.cfg.Now()))
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(max(wait, 0)):
		}
	}
}

// deletePods removes what is left on the node with no grace period: --force is for pods
// that cannot be evicted, often on a node whose kubelet is gone.
func (c *Controller) deletePods(ctx context.Context, nodeName string) (int, error) {
	pods, err := c.podsToDrain(ctx, nodeName)
	if err != nil {
		return 0, err
	}
	zero := int64(0)
	deleted := 0
	for i := range pods {
		p := &pods[i]
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			return deleted, fmt.Errorf("delete %s: %w", podRef(p), err)
		}
		deleted++
	}
	return deleted, nil
}

// podsToDrain lists the node's pods that a drain moves: not DaemonSet pods (their
// controller ignores cordons and would put them back), not static mirror pods (the API
// cannot remove them), not finished pods, not Bootyard's own helper pods.
func (c *Controller) podsToDrain(ctx context.Context, nodeName string) ([]corev1.Pod, error) {
	list, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", nodeName).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list pods on %s: %w", nodeName, err)
	}
	pods := slices.DeleteFunc(list.Items, func(p corev1.Pod) bool {
		if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
			return true
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return true
		}
		if p.Labels[labelManagedBy] == managedBy && p.Namespace == c.cfg.HelperNamespace {
			return true
		}
		for _, o := range p.OwnerReferences {
			if o.Controller != nil && *o.Controller && o.Kind == "DaemonSet" {
				return true
			}
		}
		return false
	})
	return pods, nil
}

// nodeDown reports whether the informer shows the Node NotReady (or gone).
func (c *Controller) nodeDown(name string) bool {
	k, err := c.nodes.Get(name)
	return err != nil || !isReady(k)
}

func podRef(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// budgetReason is the API server's explanation of a refused eviction, shortened.
func budgetReason(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		if d := st.Status().Details; d != nil {
			for _, cause := range d.Causes {
				if cause.Type == policyv1.DisruptionBudgetCause && cause.Message != "" {
					return cause.Message
				}
			}
		}
	}
	return err.Error()
}
