package kubestore

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// leaseWriters bounds the block writes one writeLeases sends at once.
const leaseWriters = 16

// blockChange is what one write does to one block.
type blockChange struct {
	puts []store.Lease
	// drops are MACs' older records, removed if the address still holds that MAC;
	// forLease is the lease a failure to drop is reported against.
	drops []macDrop
	// removes are addresses forgotten whatever they hold (DeleteLeases).
	removes []netip.Addr
	// overwrite writes puts whatever the addresses hold (an import restoring records).
	overwrite bool
}

type macDrop struct {
	ip, forLease netip.Addr
	mac          node.MAC
}

// failAll reports err against every address c touches.
func (c *blockChange) failAll(err error) map[netip.Addr]error {
	out := make(map[netip.Addr]error, len(c.puts)+len(c.drops)+len(c.removes))
	for _, l := range c.puts {
		out[l.IP] = err
	}
	for _, d := range c.drops {
		out[d.forLease] = fmt.Errorf("drop the MAC's older address %s: %w", d.ip, err)
	}
	for _, ip := range c.removes {
		out[ip] = err
	}
	return out
}

// writeLeases writes leases block by block, the blocks in parallel, and returns the
// leases that failed by address (nil: all written). With overwrite, an address is written
// whatever it holds (an import restoring records), and no older record is dropped.
func (s *Store) writeLeases(ctx context.Context, leases []store.Lease, overwrite bool) store.LeaseErrors {
	if err := ctx.Err(); err != nil {
		failed := store.LeaseErrors{}
		for _, l := range leases {
			failed[l.IP] = err
		}
		return failed
	}
	changes := map[netip.Prefix]*blockChange{}
	change := func(ip netip.Addr) *blockChange {
		p := blockOf(ip)
		c := changes[p]
		if c == nil {
			c = &blockChange{overwrite: overwrite}
			changes[p] = c
		}
		return c
	}
	batchIPs := make(map[netip.Addr]bool, len(leases))
	for _, l := range leases {
		batchIPs[l.IP.Unmap()] = true
	}
	for _, l := range leases {
		c := change(l.IP)
		c.puts = append(c.puts, l)
		if overwrite || l.MAC.IsZero() {
			continue
		}
		if prev, ok := s.leases.forMAC(l.MAC); ok && prev.IP != l.IP.Unmap() && !batchIPs[prev.IP] {
			d := change(prev.IP)
			d.drops = append(d.drops, macDrop{ip: prev.IP, forLease: l.IP, mac: l.MAC})
		}
	}
	var mu sync.Mutex
	failed := store.LeaseErrors{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, leaseWriters)
	for p, c := range changes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs := s.writeBlock(p, c)
			mu.Lock()
			for ip, err := range errs {
				if failed[ip] == nil {
					failed[ip] = err
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	return failed
}

// blockQueues coalesces this replica's concurrent writes to one block: while one write
// of a block is in flight, the changes that arrive for it wait and then go together in
// the next write. Without it, the writers of one replica (a pivot's import workers, a
// renewal flush beside the DHCP server's commit) would refuse one another's
// resourceVersion and retry in turn.
type blockQueues struct {
	mu sync.Mutex
	// waiting holds, for each block being written, the requests for its next write.
	waiting map[string][]*blockRequest
}

type blockRequest struct {
	c    *blockChange
	done chan blockResult
}

// blockResult is a request's outcome, or (lead) the turn to write the batch itself.
type blockResult struct {
	errs  map[netip.Addr]error
	lead  bool
	batch []*blockRequest
}

// writeBlock applies c to block p and returns what failed, by the address of the lease it
// is reported against. The write is one request for every change to p queued meanwhile.
func (s *Store) writeBlock(p netip.Prefix, c *blockChange) map[netip.Addr]error {
	name := blockName(p)
	me := &blockRequest{c: c, done: make(chan blockResult, 1)}
	q := &s.blockQueues
	q.mu.Lock()
	if batch, busy := q.waiting[name]; busy {
		q.waiting[name] = append(batch, me)
		q.mu.Unlock()
		// No giving up on ctx here: this request may be handed the next batch to write.
		// The wait is bounded all the same: the write in flight, then this one, each
		// within leaseWriteTimeout.
		r := <-me.done
		if !r.lead {
			return r.errs
		}
		return s.leadBlockWrites(p, name, me, r.batch)
	}
	q.waiting[name] = nil
	q.mu.Unlock()
	return s.leadBlockWrites(p, name, me, []*blockRequest{me})
}

// leadBlockWrites writes batch (which holds me), answers its requests and hands the next
// batch to the first request in it, so no caller writes for others for long.
func (s *Store) leadBlockWrites(p netip.Prefix, name string, me *blockRequest, batch []*blockRequest) map[netip.Addr]error {
	// Not the leader's own context: the batch's other callers wait for this write.
	ctx, cancel := context.WithTimeout(context.Background(), leaseWriteTimeout)
	results := s.writeBlockBatch(ctx, p, name, batch)
	cancel()
	var mine map[netip.Addr]error
	for i, r := range batch {
		if r == me {
			mine = results[i]
			continue
		}
		r.done <- blockResult{errs: results[i]}
	}
	q := &s.blockQueues
	q.mu.Lock()
	next := q.waiting[name]
	if len(next) == 0 {
		delete(q.waiting, name)
	} else {
		q.waiting[name] = nil
	}
	q.mu.Unlock()
	if len(next) > 0 {
		next[0].done <- blockResult{lead: true, batch: next}
	}
	return mine
}

// writeBlockBatch applies the batch's changes in order to block p and stores the result
// in one write, re-reading the block and re-applying them when another writer changed it.
func (s *Store) writeBlockBatch(ctx context.Context, p netip.Prefix, name string, batch []*blockRequest) []map[netip.Addr]error {
	results := make([]map[netip.Addr]error, len(batch))
	failAll := func(err error) []map[netip.Addr]error {
		for i, r := range batch {
			results[i] = r.c.failAll(err)
		}
		return results
	}
	cur, _ := s.leases.block(name)
	for attempt := 0; ; attempt++ {
		if attempt >= maxConflictRetries {
			return failAll(fmt.Errorf("%w: %w", errTooManyConflicts, node.ErrConflict))
		}
		var base *v1alpha1.BootyardLeaseBlock
		leases := map[netip.Addr]store.Lease{}
		if cur != nil {
			base = cur.obj
			maps.Copy(leases, cur.leases)
		}
		now, changed := s.now(), false
		for i, r := range batch {
			refused, ch := applyChange(leases, r.c, now)
			results[i], changed = refused, changed || ch
		}
		if !changed {
			return results
		}
		out := &v1alpha1.BootyardLeaseBlock{}
		var err error
		switch {
		case cur == nil:
			err = s.rc.Post().Namespace(s.ns).Resource(resLeaseBlocks).Body(s.blockObject(p, leases, nil)).Do(ctx).Into(out)
		case len(leases) == 0:
			rv := base.ResourceVersion
			err = s.rc.Delete().Namespace(s.ns).Resource(resLeaseBlocks).Name(name).
				Body(&metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}).Do(ctx).Error()
			if err == nil {
				s.leases.remove(name, resourceVersion(rv))
				return results
			}
		default:
			err = s.rc.Put().Namespace(s.ns).Resource(resLeaseBlocks).Name(name).Body(s.blockObject(p, leases, base)).Do(ctx).Into(out)
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) || (cur != nil && apierrors.IsNotFound(err)) {
			// Another replica wrote this block since our read: decide on what it wrote.
			if cur, err = s.getBlock(ctx, name); err != nil {
				return failAll(err)
			}
			continue
		}
		if err != nil {
			return failAll(kindErr(err))
		}
		s.leases.put(out)
		return results
	}
}

// applyChange applies c to a block's leases and returns the leases refused (an active
// lease of another MAC holds the address) and whether anything changed.
func applyChange(leases map[netip.Addr]store.Lease, c *blockChange, now time.Time) (refused map[netip.Addr]error, changed bool) {
	for _, ip := range c.removes {
		if _, ok := leases[ip]; ok {
			delete(leases, ip)
			changed = true
		}
	}
	for _, d := range c.drops {
		if held, ok := leases[d.ip]; ok && held.MAC == d.mac {
			delete(leases, d.ip)
			changed = true
		}
	}
	for _, l := range c.puts {
		ip := l.IP.Unmap()
		held, ok := leases[ip]
		if !c.overwrite && ok && l.State == store.LeaseActive && held.MAC != l.MAC && held.ActiveAt(now) {
			if refused == nil {
				refused = map[netip.Addr]error{}
			}
			refused[l.IP] = fmt.Errorf("address is leased to %s until %s: %w", held.MAC, held.Expires.Format("15:04:05"), node.ErrConflict)
			continue
		}
		l.IP = ip
		l.Expires = l.Expires.UTC() // as the record reads back
		if !ok || held != l {
			leases[ip] = l
			changed = true
		}
	}
	return refused, changed
}

// getBlock reads one block from the API server (nil when there is none).
func (s *Store) getBlock(ctx context.Context, name string) (*cachedBlock, error) {
	o := &v1alpha1.BootyardLeaseBlock{}
	err := s.rc.Get().Namespace(s.ns).Resource(resLeaseBlocks).Name(name).Do(ctx).Into(o)
	if apierrors.IsNotFound(err) {
		s.leases.remove(name, 0)
		return nil, nil
	}
	if err != nil {
		return nil, kindErr(err)
	}
	p, leases, err := blockLeases(o)
	if err != nil {
		return nil, err
	}
	s.leases.put(o)
	return &cachedBlock{obj: o, prefix: p, leases: leases, rv: resourceVersion(o.ResourceVersion)}, nil
}
