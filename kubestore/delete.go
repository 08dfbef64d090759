package kubestore

import (
	"context"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
)

// DeleteNode applies node.PlanDeletion against the servers as the API server holds them
// (a fresh list, not the cache) and writes the result. Two deletions that both pass a
// quorum check only one of them may are kept apart by the settings object's quorum
// epoch: each writes its node, then bumps the epoch conditional on the version it read
// before listing; the loser rolls its node back and plans again, and then sees the
// winner's deletion in its list.
func (s *Store) DeleteNode(ctx context.Context, name string, opts node.DeleteOptions) (node.Node, bool, error) {
	if err := ctxErr(ctx); err != nil {
		return node.Node{}, false, err
	}
	if opts.Now.IsZero() {
		opts.Now = s.now()
	}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		settings, err := s.settingsObj(ctx)
		if err != nil {
			return node.Node{}, false, err
		}
		obj, err := s.getNodeObj(ctx, name)
		if err != nil {
			return node.Node{}, false, err
		}
		all, err := s.liveQuorumView(ctx)
		if err != nil {
			return node.Node{}, false, err
		}
		old, err := toNode(obj)
		if err != nil {
			return node.Node{}, false, err
		}
		target := cloneNode(old)
		plan, err := node.PlanDeletion(&target, all, opts)
		if err != nil {
			return node.Node{}, false, err
		}
		if plan.Remove {
			if err := s.removeNode(ctx, obj); err != nil {
				if apierrors.IsConflict(err) {
					continue
				}
				return node.Node{}, false, err
			}
			return target, true, nil
		}
		written, err := s.writeNodeObj(ctx, s.fromNode(&target, obj), obj)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return node.Node{}, false, fmt.Errorf("delete %s: %w", name, kindErr(err))
		}
		if err := s.bumpQuorumEpoch(ctx, settings); err != nil {
			if !apierrors.IsConflict(err) {
				return node.Node{}, false, fmt.Errorf("delete %s: quorum epoch: %w", name, kindErr(err))
			}
			// Another deletion (or a settings change) went first: undo ours and plan again.
			if _, rerr := s.writeNodeObj(ctx, s.fromNode(&old, written), written); rerr != nil {
				return node.Node{}, false, fmt.Errorf("delete %s: roll back after a concurrent deletion: %w", name, kindErr(rerr))
			}
			continue
		}
		if err := s.events.append(ctx, plan.Events...); err != nil {
			return node.Node{}, false, err
		}
		s.updated(old, target)
		return target, false, nil
	}
	return node.Node{}, false, fmt.Errorf("delete %s: %w: %w", name, errTooManyConflicts, node.ErrConflict)
}

// liveQuorumView is the quorum view with the servers listed from the API server.
func (s *Store) liveQuorumView(ctx context.Context) ([]node.Node, error) {
	var list v1alpha1.BootyardNodeList
	sel := labels.SelectorFromSet(labels.Set{labelRole: string(node.RoleServer)}).String()
	if err := s.rc.Get().Namespace(s.ns).Resource(resNodes).Param("labelSelector", sel).Do(ctx).Into(&list); err != nil {
		return nil, fmt.Errorf("list servers: %w", kindErr(err))
	}
	var all []node.Node
	for i := range list.Items {
		n, err := toNode(&list.Items[i])
		if err != nil {
			return nil, err
		}
		all = append(all, n)
	}
	s.nodes.each(func(e *cachedNode) {
		if e.n.Role != node.RoleServer {
			all = append(all, quorumEntry(e.n))
		}
	})
	return all, nil
}

func (s *Store) bumpQuorumEpoch(ctx context.Context, settings *v1alpha1.BootyardSettings) error {
	epoch, _ := strconv.ParseUint(settings.Annotations[annotationQuorumEpoch], 10, 64)
	body, pt := patchMeta(map[string]string{annotationQuorumEpoch: strconv.FormatUint(epoch+1, 10)}, settings.ResourceVersion)
	return s.rc.Patch(pt).Namespace(s.ns).Resource(resSettings).Name(settingsName).Body(body).Do(ctx).Error()
}
