package kubestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// leaseWriters bounds the requests one PutLeases sends at once: the DHCP server
// group-commits every REQUEST waiting at that moment, and the batch should cost about
// one round trip, not one per lease.
const leaseWriters = 32

// PutLeases writes leases, each to the object named by its address. Claiming a free
// address is a create, so when two replicas offer one address to two machines the API
// server lets one create win and the other gets ErrConflict; an update is conditional
// on the version read, and an active lease of another MAC is never overwritten by an
// active one until it expires. A MAC's older address record is dropped, as in bbolt.
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
	var mu sync.Mutex
	failed := store.LeaseErrors{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, leaseWriters)
	for _, l := range leases {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			wctx, cancel := context.WithTimeout(ctx, leaseWriteTimeout)
			defer cancel()
			err := s.putLease(wctx, l)
			if err != nil && unreachable(err) && s.renewFromCache(l) {
				err = nil
			}
			if err != nil {
				mu.Lock()
				failed[l.IP] = fmt.Errorf("put lease %s: %w", l.IP, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
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
	name := leaseName(l.IP)
	e, ok := s.leases.get(name)
	if !ok || e.l.MAC != l.MAC || !e.l.ActiveAt(s.now()) {
		return false
	}
	renewed := *e
	renewed.l = l
	s.leases.replace(name, e, &renewed)
	s.pendingMu.Lock()
	s.pending[name] = l
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
		s.pendingMu.Lock()
		batch := make([]store.Lease, 0, len(s.pending))
		for _, l := range s.pending {
			batch = append(batch, l)
		}
		s.pendingMu.Unlock()
		for _, l := range batch {
			wctx, cancel := context.WithTimeout(ctx, leaseWriteTimeout)
			err := s.putLease(wctx, l)
			cancel()
			if err != nil && unreachable(err) {
				break // still cut off: try the lot again next time
			}
			if err != nil {
				s.log.Warn("a renewal accepted while the API server was unreachable could not be written",
					slog.String("ip", l.IP.String()), slog.String("mac", l.MAC.String()), slog.Any("err", err))
			}
			s.pendingMu.Lock()
			if s.pending[leaseName(l.IP)] == l {
				delete(s.pending, leaseName(l.IP))
			}
			s.pendingMu.Unlock()
		}
	}
}

// PendingRenewals is how many renewals accepted while the API server was unreachable
// are not written yet.
func (s *Store) PendingRenewals() int {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	return len(s.pending)
}

func (s *Store) putLease(ctx context.Context, l store.Lease) error {
	name := leaseName(l.IP)
	var prevMACRecord *cachedLease
	if !l.MAC.IsZero() {
		if e, ok := s.leases.forMAC(l.MAC); ok && e.obj.Name != name {
			prevMACRecord = e
		}
	}
	cur, _ := s.leases.get(name)
	for attempt := 0; ; attempt++ {
		if attempt >= maxConflictRetries {
			return fmt.Errorf("%w: %w", errTooManyConflicts, node.ErrConflict)
		}
		out := &v1alpha1.BootyardLease{}
		var err error
		if cur == nil {
			err = s.rc.Post().Namespace(s.ns).Resource(resLeases).Body(s.fromLease(l, nil)).Do(ctx).Into(out)
		} else {
			if held := cur.l; l.State == store.LeaseActive && held.MAC != l.MAC && held.ActiveAt(s.now()) {
				return fmt.Errorf("address is leased to %s until %s: %w", held.MAC, held.Expires.Format("15:04:05"), node.ErrConflict)
			}
			err = s.rc.Put().Namespace(s.ns).Resource(resLeases).Name(name).Body(s.fromLease(l, cur.obj)).Do(ctx).Into(out)
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) || (cur != nil && apierrors.IsNotFound(err)) {
			// Someone else wrote this address since our read: decide on what they wrote.
			if cur, err = s.getLease(ctx, name); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return kindErr(err)
		}
		s.leases.put(out)
		break
	}
	if prevMACRecord != nil && prevMACRecord.l.MAC == l.MAC {
		rv := prevMACRecord.obj.ResourceVersion
		err := s.rc.Delete().Namespace(s.ns).Resource(resLeases).Name(prevMACRecord.obj.Name).
			Body(&metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}).Do(ctx).Error()
		if err == nil || apierrors.IsNotFound(err) {
			s.leases.remove(prevMACRecord.obj.Name, resourceVersion(rv))
		} else if !apierrors.IsConflict(err) {
			return fmt.Errorf("drop the MAC's older address %s: %w", prevMACRecord.l.IP, kindErr(err))
		}
	}
	return nil
}

// getLease reads one record from the API server (nil when there is none).
func (s *Store) getLease(ctx context.Context, name string) (*cachedLease, error) {
	o := &v1alpha1.BootyardLease{}
	err := s.rc.Get().Namespace(s.ns).Resource(resLeases).Name(name).Do(ctx).Into(o)
	if apierrors.IsNotFound(err) {
		s.leases.remove(name, 0)
		return nil, nil
	}
	if err != nil {
		return nil, kindErr(err)
	}
	s.leases.put(o)
	l, err := toLease(o)
	if err != nil {
		return nil, err
	}
	return &cachedLease{obj: o, l: l, rv: resourceVersion(o.ResourceVersion)}, nil
}

// DeleteLeases forgets addresses entirely.
func (s *Store) DeleteLeases(ctx context.Context, ips ...netip.Addr) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for _, ip := range ips {
		name := leaseName(ip)
		err := s.rc.Delete().Namespace(s.ns).Resource(resLeases).Name(name).Do(ctx).Error()
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete lease %s: %w", ip, kindErr(err))
		}
		s.leases.remove(name, 0)
	}
	return nil
}

// Leases returns every address record, in address order, from the cache.
func (s *Store) Leases(ctx context.Context) ([]store.Lease, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.leases.mu.RLock()
	out := make([]store.Lease, 0, len(s.leases.leases.byName))
	for _, e := range s.leases.leases.byName {
		out = append(out, e.v.l)
	}
	s.leases.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Lease) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// MACForIP returns the MAC holding an active lease on ip, or node.ErrNotFound.
func (s *Store) MACForIP(ctx context.Context, ip netip.Addr) (node.MAC, error) {
	if err := ctxErr(ctx); err != nil {
		return node.MAC{}, err
	}
	ip = ip.Unmap()
	e, ok := s.leases.get(leaseName(ip))
	if !ok {
		return node.MAC{}, fmt.Errorf("lease for %s: %w", ip, node.ErrNotFound)
	}
	if now := s.now(); !e.l.ActiveAt(now) {
		return node.MAC{}, fmt.Errorf("lease for %s is %s: %w", ip, leaseCondition(e.l, now), node.ErrNotFound)
	}
	return e.l.MAC, nil
}

// LeaseForMAC returns mac's active lease, or node.ErrNotFound.
func (s *Store) LeaseForMAC(ctx context.Context, mac node.MAC) (store.Lease, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Lease{}, err
	}
	e, ok := s.leases.forMAC(mac)
	if !ok {
		return store.Lease{}, fmt.Errorf("lease for %s: %w", mac, node.ErrNotFound)
	}
	if now := s.now(); e.l.MAC != mac || !e.l.ActiveAt(now) {
		return store.Lease{}, fmt.Errorf("lease for %s is %s: %w", mac, leaseCondition(e.l, now), node.ErrNotFound)
	}
	return e.l, nil
}

func leaseCondition(l store.Lease, now time.Time) string {
	if l.State == store.LeaseActive && !now.Before(l.Expires) {
		return "expired"
	}
	return l.State.String()
}
