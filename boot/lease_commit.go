package boot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bootyard/bootyard/store"
)

// leaseCommitter is a group commit: every lease waiting while one bbolt transaction runs
// goes into the next one, so N concurrent REQUESTs cost about one fsync, not N, and no
// request waits for a timer (bbolt's db.Batch would add up to its MaxBatchDelay, 10ms by
// default, to every ACK).
type leaseCommitter struct {
	store    LeaseStore
	requests chan commitRequest
	counters *dhcpCounters
}

type commitRequest struct {
	lease store.Lease
	done  chan error
}

// maxCommitBatch bounds one transaction, so a burst cannot build a huge write.
const maxCommitBatch = 2048

// newLeaseCommitter queues up to waiters requests: each handler waits for its own
// commit, so no more are ever queued (a sender past that waits its turn). A queue and
// batches sized for the largest batch were half a megabyte held for the server's life,
// which the collector's heap goal doubles.
func newLeaseCommitter(s LeaseStore, c *dhcpCounters, waiters int) *leaseCommitter {
	return &leaseCommitter{store: s, requests: make(chan commitRequest, min(max(waiters, 1), maxCommitBatch)), counters: c}
}

// commit returns once l is durable in bbolt (or the write failed).
func (c *leaseCommitter) commit(ctx context.Context, l store.Lease) error {
	done := make(chan error, 1)
	select {
	case c.requests <- commitRequest{lease: l, done: done}:
	case <-ctx.Done():
		return fmt.Errorf("commit lease %s: %w", l.IP, ctx.Err())
	}
	// Once queued the write happens regardless of ctx: the in-memory table already
	// changed, and the caller must learn the outcome to ACK or undo.
	return <-done
}

// run writes batches until requests is closed and drained. The store calls use a context
// that is not cancelled at shutdown: in-flight leases are finished, not abandoned.
func (c *leaseCommitter) run(ctx context.Context) {
	// Grown by append to the largest batch seen, and kept.
	var batch []commitRequest
	var leases []store.Lease
	for first := range c.requests {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < maxCommitBatch {
			select {
			case r, ok := <-c.requests:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		leases = leases[:0]
		for _, r := range batch {
			leases = append(leases, r.lease)
		}
		start := time.Now()
		err := c.put(context.WithoutCancel(ctx), leases)
		c.counters.commitNanos.Add(uint64(time.Since(start)))
		c.counters.commitBatches.Add(1)
		// A store that wrote part of the batch says which leases failed: only their
		// REQUESTs go without an ACK.
		var partial store.LeaseErrors
		if errors.As(err, &partial) {
			for _, r := range batch {
				rerr := partial[r.lease.IP]
				if rerr != nil {
					c.counters.commitErrors.Add(1)
					rerr = fmt.Errorf("commit lease %s: %w", r.lease.IP, rerr)
				} else {
					c.counters.leasesCommitted.Add(1)
				}
				r.done <- rerr
			}
			continue
		}
		if err != nil {
			c.counters.commitErrors.Add(uint64(len(batch)))
			err = fmt.Errorf("commit %d leases: %w", len(batch), err)
		} else {
			c.counters.leasesCommitted.Add(uint64(len(batch)))
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// put writes one batch. A lease store that panics fails the batch (its REQUESTs get no
// ACK and are retransmitted) instead of killing the committer every handler waits on.
func (c *leaseCommitter) put(ctx context.Context, leases []store.Lease) (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.counters.panics.Add(1)
			err = fmt.Errorf("lease store panicked: %v", v)
		}
	}()
	return c.store.PutLeases(ctx, leases...)
}
