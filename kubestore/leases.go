package kubestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// PutLeases writes leases. They are grouped by address block, and each block touched is
// one write: a create when the block has no object yet (the API server refuses the second
// of two creates), else an update conditional on the version read (it refuses a writer
// that did not see the last change). On a refusal the block is read again and the batch
// re-applied to what the other writer stored. An active lease of another MAC is never
// overwritten by an active one until it expires. A MAC's older address record is dropped,
// as in bbolt (in the same write when it is in the same block).
//
// Leases that fail are named in a store.LeaseErrors; the others were written. While the
// API server cannot be reached, the renewal of a lease the cache holds for the same MAC
// and address is accepted and written when it can be again (see pendingRenewals); a new
// address is refused: only the API server can say no other replica took it.
func (s *Store) PutLeases(ctx context.Context, leases ...store.Lease) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for _, l := range leases {
		if !l.IP.IsValid() {
			return fmt.Errorf("put lease for %s: %w: no address", l.MAC, node.ErrInvalid)
		}
	}
	failed := s.writeLeases(ctx, leases, false)
	for _, l := range leases {
		if err := failed[l.IP]; err != nil && unreachable(err) && s.renewFromCache(l) {
			delete(failed, l.IP)
		}
	}
	if len(failed) > 0 {
		for ip, err := range failed {
			failed[ip] = fmt.Errorf("put lease %s: %w", ip, err)
		}
		return failed
	}
	return nil
}

// leaseWriteTimeout bounds one lease write: a DHCP client retransmits after a few
// seconds, so a write that takes longer helps nobody, and an API server behind a
// partition would otherwise hold the batch until TCP gives up.
const leaseWriteTimeout = 4 * time.Second

// unreachable reports whether err means the API server could not be asked (down,
// partitioned, overloaded), as opposed to an answer such as a conflict.
func unreachable(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err)
}

// renewFromCache accepts l without the API server when it renews what the cache holds:
// the same MAC's active lease on the same address. The cache takes the new expiry (so
// MACForIP keeps answering for the machine) and the write is queued.
func (s *Store) renewFromCache(l store.Lease) bool {
	if l.State != store.LeaseActive || l.MAC.IsZero() {
		return false
	}
	l.IP = l.IP.Unmap()
	held, ok := s.leases.lease(l.IP)
	if !ok || held.MAC != l.MAC || !held.ActiveAt(s.now()) || !s.leases.renew(held, l) {
		return false
	}
	s.pendingMu.Lock()
	s.pending[l.IP] = l
	s.pendingMu.Unlock()
	s.renewedOffline.Add(1)
	return true
}

// flushRenewals writes the renewals accepted while the API server was unreachable,
// every interval until ctx ends; a renewal that fails to be written stays queued, one
// that is refused (the address changed hands meanwhile) is dropped with a warning.
func (s *Store) flushRenewals(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, down := s.reach.since(); down && !s.probe(ctx) {
			continue // writes would fail at once: nothing to try until it answers
		}
		s.pendingMu.Lock()
		batch := make([]store.Lease, 0, len(s.pending))
		for _, l := range s.pending {
			batch = append(batch, l)
		}
		s.pendingMu.Unlock()
		if len(batch) == 0 {
			continue
		}
		failed := s.writeLeases(ctx, batch, false)
		if ctx.Err() != nil {
			return // closing: a write cut short by it is not a refusal to warn about
		}
		for _, l := range batch {
			err := failed[l.IP]
			if err != nil && unreachable(err) {
				continue // still cut off: try it again next time
			}
			if err != nil {
				s.log.Warn("a renewal accepted while the API server was unreachable could not be written",
					slog.String("ip", l.IP.String()), slog.String("mac", l.MAC.String()), slog.Any("err", err))
			}
			s.pendingMu.Lock()
			if s.pending[l.IP] == l {
				delete(s.pending, l.IP)
			}
			s.pendingMu.Unlock()
		}
	}
}

// probe asks the API server for the settings object, a read that the cut-off does not
// stop: an answer (of any kind) ends the cut-off. It reports whether one came.
func (s *Store) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, leaseWriteTimeout)
	defer cancel()
	_ = s.rc.Get().Namespace(s.ns).Resource(resSettings).Name(settingsName).Do(ctx).Error()
	_, down := s.reach.since()
	return !down
}

// PendingRenewals is how many renewals accepted while the API server was unreachable
// are not written yet.
func (s *Store) PendingRenewals() int {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	return len(s.pending)
}

// DeleteLeases forgets addresses entirely.
func (s *Store) DeleteLeases(ctx context.Context, ips ...netip.Addr) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	changes := map[netip.Prefix]*blockChange{}
	for _, ip := range ips {
		p := blockOf(ip)
		if changes[p] == nil {
			changes[p] = &blockChange{overwrite: true}
		}
		changes[p].removes = append(changes[p].removes, ip.Unmap())
	}
	for p, c := range changes {
		for _, err := range s.writeBlock(p, c) {
			return fmt.Errorf("delete leases in %s: %w", p, err)
		}
	}
	return nil
}

// Leases returns every address record, in address order, from the cache.
func (s *Store) Leases(ctx context.Context) ([]store.Lease, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	out := s.leases.all()
	slices.SortFunc(out, func(a, b store.Lease) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// MACForIP returns the MAC holding an active lease on ip, or node.ErrNotFound.
func (s *Store) MACForIP(ctx context.Context, ip netip.Addr) (node.MAC, error) {
	if err := ctxErr(ctx); err != nil {
		return node.MAC{}, err
	}
	ip = ip.Unmap()
	l, ok := s.leases.lease(ip)
	if !ok {
		return node.MAC{}, fmt.Errorf("lease for %s: %w", ip, node.ErrNotFound)
	}
	if now := s.now(); !l.ActiveAt(now) {
		return node.MAC{}, fmt.Errorf("lease for %s is %s: %w", ip, leaseCondition(l, now), node.ErrNotFound)
	}
	return l.MAC, nil
}

// LeaseForMAC returns mac's active lease, or node.ErrNotFound.
func (s *Store) LeaseForMAC(ctx context.Context, mac node.MAC) (store.Lease, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Lease{}, err
	}
	l, ok := s.leases.forMAC(mac)
	if !ok {
		return store.Lease{}, fmt.Errorf("lease for %s: %w", mac, node.ErrNotFound)
	}
	if now := s.now(); l.MAC != mac || !l.ActiveAt(now) {
		return store.Lease{}, fmt.Errorf("lease for %s is %s: %w", mac, leaseCondition(l, now), node.ErrNotFound)
	}
	return l, nil
}

func leaseCondition(l store.Lease, now time.Time) string {
	if l.State == store.LeaseActive && !now.Before(l.Expires) {
		return "expired"
	}
	return l.State.String()
}
