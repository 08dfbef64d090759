package kubestore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// RecordBoot notes that mac network-booted, as store.Store.RecordBoot does: an unknown
// MAC becomes a discovered node (created under node.DefaultName, so two replicas that
// see the same first boot create one object, and the second gets AlreadyExists), a known
// one gets its boot record merged. A repeat with nothing new within the store's
// resolution costs no write.
func (s *Store) RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	now := s.now()
	seen, err := store.CleanBoot(mac, seen, now)
	if err != nil {
		return err
	}
	e, ok := s.nodes.byMACName(mac)
	if !ok {
		err := s.discover(ctx, mac, seen)
		if !errors.Is(err, node.ErrConflict) {
			return err
		}
		// Another replica discovered it first: merge into its record.
		if _, err := s.getNodeObj(ctx, node.DefaultName(mac)); err != nil {
			return fmt.Errorf("record boot %s: %w", mac, err)
		}
		if e, ok = s.nodes.byMACName(mac); !ok {
			return fmt.Errorf("record boot %s: %w", mac, node.ErrConflict)
		}
	}
	if !store.BootNeedsWrite(e.n.Boot, seen) {
		return nil
	}
	_, err = s.UpdateNode(ctx, e.n.Name, func(n *node.Node) ([]node.Event, error) {
		if !n.HasMAC(mac) {
			return nil, fmt.Errorf("record boot %s: node %s no longer owns it: %w", mac, n.Name, node.ErrConflict)
		}
		n.Boot = store.MergeBoot(n.Boot, seen)
		n.LastSeen = seen.LastSeen
		n.UpdatedAt = now
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("record boot %s: %w", mac, err)
	}
	return nil
}

func (s *Store) discover(ctx context.Context, mac node.MAC, seen node.BootInfo) error {
	at := seen.LastSeen
	n := node.Node{
		Name: node.DefaultName(mac), MACs: []node.MAC{mac}, State: node.StateDiscovered,
		StateReason: "network-booted, not imported", StateSince: at, Boot: store.MergeBoot(node.BootInfo{}, seen),
		CreatedAt: at, UpdatedAt: at, LastSeen: at, Labels: map[string]string{}, Taints: []node.Taint{},
	}
	if err := n.Validate(); err != nil {
		return err
	}
	if _, err := s.createNode(ctx, &n, ""); err != nil {
		return fmt.Errorf("discover %s as %s: %w", mac, n.Name, err)
	}
	if err := s.events.append(ctx, node.Event{Time: at, Node: n.Name, Type: node.EventTransition,
		To: node.StateDiscovered, Reason: "first network boot: " + store.DescribeBoot(n.Boot)}); err != nil {
		return err
	}
	s.updated(node.Node{}, n)
	return s.evictDiscovered(ctx)
}

// evictDiscovered forgets the longest-unseen discovered nodes past MaxDiscovered.
func (s *Store) evictDiscovered(ctx context.Context) error {
	var disc []*cachedNode
	s.nodes.each(func(e *cachedNode) {
		if e.n.State == node.StateDiscovered {
			disc = append(disc, e)
		}
	})
	if len(disc) <= s.limits.MaxDiscovered {
		return nil
	}
	slices.SortFunc(disc, func(a, b *cachedNode) int { return a.n.LastSeen.Compare(b.n.LastSeen) })
	for _, e := range disc[:len(disc)-s.limits.MaxDiscovered] {
		if err := s.removeNode(ctx, e.obj); err != nil {
			if apierrors.IsConflict(err) || errors.Is(err, node.ErrNotFound) || errors.Is(err, node.ErrConflict) {
				continue // imported or seen again meanwhile: not this one
			}
			return fmt.Errorf("evict discovered %s: %w", e.n.Name, err)
		}
		s.bounds.discoveredEvicted.Add(1)
	}
	return nil
}
