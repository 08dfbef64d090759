package kubestore

import (
	"context"
	"fmt"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// eventLog keeps each node's history as BootyardEvent objects, bounded like the bbolt
// store's ring: past MaxNodeEvents entries or MaxNodeEventBytes (each entry counted as
// its reason's length plus a fixed overhead) the oldest objects are deleted.
type eventLog struct {
	s  *Store
	mu sync.Mutex
	// lastSeq is the last sequence number this replica gave out; counts is how many
	// events of each node this replica believes exist (learnt from a list at the first
	// append, then counted), so trimming lists only when a bound is passed.
	lastSeq int64
	counts  map[string]int
}

// eventOverhead stands for an entry's fields other than its reason, so a history of
// empty reasons still has a byte size.
const eventOverhead = 64

// nextSeq is a sequence number later than every one this replica gave out and than the
// clock: replicas share no counter, and nanoseconds order their writes closely enough
// for a history read by people.
func (l *eventLog) nextSeq() int64 {
	now := l.s.now().UnixNano()
	if now <= l.lastSeq {
		now = l.lastSeq + 1
	}
	l.lastSeq = now
	return now
}

func eventName(nodeName string, seq int64) string { return fmt.Sprintf("%s.%016x", nodeName, seq) }

// append writes events, each its own object, and trims their nodes' histories.
func (l *eventLog) append(ctx context.Context, events ...node.Event) error {
	touched := map[string]bool{}
	for _, e := range events {
		if e.Node == "" {
			return fmt.Errorf("event without a node: %+v", e)
		}
		for {
			l.mu.Lock()
			seq := l.nextSeq()
			l.mu.Unlock()
			o := &v1alpha1.BootyardEvent{
				ObjectMeta: metav1.ObjectMeta{Namespace: l.s.ns, Name: eventName(e.Node, seq), Labels: map[string]string{labelNode: e.Node}},
				Spec:       eventSpec(e),
			}
			o.Spec.Seq = seq
			err := l.s.rc.Post().Namespace(l.s.ns).Resource(resEvents).Body(o).Do(ctx).Error()
			if apierrors.IsAlreadyExists(err) {
				continue // another replica took this number in the same nanosecond
			}
			if err != nil {
				return fmt.Errorf("append event of %s: %w", e.Node, kindErr(err))
			}
			break
		}
		touched[e.Node] = true
	}
	for name := range touched {
		if err := l.trim(ctx, name, len(events)); err != nil {
			return err
		}
	}
	return nil
}

func (l *eventLog) list(ctx context.Context, nodeName string) ([]v1alpha1.BootyardEvent, error) {
	var list v1alpha1.BootyardEventList
	sel := labels.SelectorFromSet(labels.Set{labelNode: nodeName}).String()
	if err := l.s.rc.Get().Namespace(l.s.ns).Resource(resEvents).Param("labelSelector", sel).Do(ctx).Into(&list); err != nil {
		return nil, fmt.Errorf("events of %s: %w", nodeName, kindErr(err))
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Spec.Seq < list.Items[j].Spec.Seq })
	return list.Items, nil
}

// trim keeps nodeName's history within the bounds. added is how many events the caller
// just wrote (an upper bound for this node).
func (l *eventLog) trim(ctx context.Context, nodeName string, added int) error {
	l.mu.Lock()
	count, known := l.counts[nodeName]
	if known {
		count += added
		l.counts[nodeName] = count
	}
	l.mu.Unlock()
	// The byte bound is checked at each list; between lists only the count is, as each
	// entry costs at least eventOverhead bytes.
	maxCount := l.s.limits.MaxNodeEvents
	if byBytes := l.s.limits.MaxNodeEventBytes / eventOverhead; byBytes < maxCount {
		maxCount = max(byBytes, 1)
	}
	if known && count <= maxCount {
		return nil
	}
	items, err := l.list(ctx, nodeName)
	if err != nil {
		return err
	}
	size := 0
	for _, it := range items {
		size += len(it.Spec.Reason) + eventOverhead
	}
	drop := 0
	for len(items)-drop > 1 && (len(items)-drop > l.s.limits.MaxNodeEvents || size > l.s.limits.MaxNodeEventBytes) {
		size -= len(items[drop].Spec.Reason) + eventOverhead
		drop++
	}
	for _, it := range items[:drop] {
		if err := l.s.rc.Delete().Namespace(l.s.ns).Resource(resEvents).Name(it.Name).Do(ctx).Error(); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("trim events of %s: %w", nodeName, kindErr(err))
		}
	}
	if drop > 0 {
		l.s.bounds.eventsDropped.Add(uint64(drop))
	}
	l.mu.Lock()
	l.counts[nodeName] = len(items) - drop
	l.mu.Unlock()
	return nil
}

// move carries a node's history to its new name (rename, discovered → imported).
func (l *eventLog) move(ctx context.Context, from, to string) error {
	items, err := l.list(ctx, from)
	if err != nil {
		return err
	}
	for _, it := range items {
		o := &v1alpha1.BootyardEvent{
			ObjectMeta: metav1.ObjectMeta{Namespace: l.s.ns, Name: eventName(to, it.Spec.Seq), Labels: map[string]string{labelNode: to}},
			Spec:       it.Spec,
		}
		o.Spec.Node = to
		if err := l.s.rc.Post().Namespace(l.s.ns).Resource(resEvents).Body(o).Do(ctx).Error(); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("move events %s → %s: %w", from, to, kindErr(err))
		}
	}
	if err := l.drop(ctx, from); err != nil {
		return err
	}
	l.mu.Lock()
	delete(l.counts, to) // recounted at the next append
	l.mu.Unlock()
	return nil
}

// drop deletes a node's whole history.
func (l *eventLog) drop(ctx context.Context, nodeName string) error {
	sel := labels.SelectorFromSet(labels.Set{labelNode: nodeName}).String()
	err := l.s.rc.Delete().Namespace(l.s.ns).Resource(resEvents).Param("labelSelector", sel).Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("drop events of %s: %w", nodeName, kindErr(err))
	}
	l.mu.Lock()
	delete(l.counts, nodeName)
	l.mu.Unlock()
	return nil
}

// AppendEvents records events that go with no node change. Events of a node that does
// not exist are ErrNotFound and none of the call's events are written.
func (s *Store) AppendEvents(ctx context.Context, events ...node.Event) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for _, e := range events {
		if _, ok := s.nodes.get(e.Node); e.Node != "" && !ok {
			return fmt.Errorf("append events: node %q: %w", e.Node, node.ErrNotFound)
		}
	}
	return s.events.append(ctx, events...)
}

// AppendMACEvents records events for whichever node owns each MAC now; events of MACs
// no node owns are dropped and counted.
func (s *Store) AppendMACEvents(ctx context.Context, events ...store.MACEvent) (int, error) {
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	dropped := 0
	named := make([]node.Event, 0, len(events))
	for _, me := range events {
		e, ok := s.nodes.byMACName(me.MAC)
		if !ok {
			dropped++
			continue
		}
		ev := me.Event
		ev.Node = e.n.Name
		named = append(named, ev)
	}
	if err := s.events.append(ctx, named...); err != nil {
		return 0, fmt.Errorf("append events by MAC: %w", err)
	}
	return dropped, nil
}

// Events returns a node's events, oldest first; limit > 0 keeps only the newest limit.
func (s *Store) Events(ctx context.Context, name string, limit int) ([]node.Event, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if _, ok := s.nodes.get(name); !ok {
		return nil, fmt.Errorf("node %q: %w", name, node.ErrNotFound)
	}
	items, err := s.events.list(ctx, name)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(items) > limit {
		items = items[len(items)-limit:]
	}
	out := make([]node.Event, 0, len(items))
	for _, it := range items {
		out = append(out, toEvent(it.Spec))
	}
	return out, nil
}
