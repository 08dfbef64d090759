package boot

import (
	"net/netip"
	"sync"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// bindState is a binding's meaning in memory: the durable states plus "offered", which
// is never written (an OFFER is a promise for OfferHold, not a lease).
type bindState uint8

const (
	bindOffered  bindState = iota + 1
	bindActive             // store.LeaseActive
	bindReleased           // store.LeaseReleased
	bindDeclined           // store.LeaseDeclined
)

// binding is one address's record in the in-memory index.
type binding struct {
	ip       netip.Addr
	mac      node.MAC // zero for a declined address
	state    bindState
	expires  time.Time
	hostname string
}

// live reports whether the binding still keeps the address from everyone else.
func (b *binding) live(now time.Time) bool {
	return (b.state == bindOffered || b.state == bindActive || b.state == bindDeclined) && now.Before(b.expires)
}

func (b *binding) lease() store.Lease {
	l := store.Lease{IP: b.ip, MAC: b.mac, Expires: b.expires, Hostname: b.hostname}
	switch b.state {
	case bindActive:
		l.State = store.LeaseActive
	case bindReleased, bindOffered:
		l.State = store.LeaseReleased
	case bindDeclined:
		l.State = store.LeaseDeclined
	}
	return l
}

// subnetPool is one served subnet: the interface's own or one behind a relay.
type subnetPool struct {
	subnet netip.Prefix
	rng    Range
	// excluded addresses are inside the range but never handed out (server, router, DNS).
	excluded map[netip.Addr]bool
	// cursor is where the next scan for a never-used address starts, so that handing out
	// N addresses costs O(N) in total, not O(N²): the pool stays flat as leases grow.
	cursor uint32
	opts   poolOptions
}

// leaseTable is the in-memory index of every address record, loaded from the store at
// start. bbolt is the durable copy; lookups never touch it.
type leaseTable struct {
	mu    sync.Mutex
	byIP  map[netip.Addr]*binding
	byMAC map[node.MAC]*binding
}

func newLeaseTable(leases []store.Lease) *leaseTable {
	t := &leaseTable{byIP: make(map[netip.Addr]*binding, len(leases)), byMAC: make(map[node.MAC]*binding, len(leases))}
	for _, l := range leases {
		b := &binding{ip: l.IP, mac: l.MAC, expires: l.Expires, hostname: l.Hostname}
		switch l.State {
		case store.LeaseActive:
			b.state = bindActive
		case store.LeaseReleased:
			b.state = bindReleased
		case store.LeaseDeclined:
			b.state = bindDeclined
		default:
			continue
		}
		t.byIP[l.IP] = b
		if !l.MAC.IsZero() {
			t.byMAC[l.MAC] = b
		}
	}
	return t
}

// activeCount counts bindings that are leased now (for stats).
func (t *leaseTable) activeCount(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, b := range t.byIP {
		if b.state == bindActive && now.Before(b.expires) {
			n++
		}
	}
	return n
}

// offer picks the address to OFFER mac on pool p: its static reservation (static, when
// valid), else its previous address, else a never-used one, else a reclaimed one.
// ok is false when the pool is exhausted.
func (t *leaseTable) offer(mac node.MAC, p *subnetPool, static netip.Addr, resv *reservations, now time.Time, hold time.Duration) (netip.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if static.IsValid() {
		if b := t.byMAC[mac]; b != nil && b.ip == static && b.state == bindActive && now.Before(b.expires) {
			return static, true
		}
		t.assign(static, mac, bindOffered, now.Add(hold), "")
		return static, true
	}
	if b := t.byMAC[mac]; b != nil && p.rng.Contains(b.ip) && !p.excluded[b.ip] && b.state != bindDeclined &&
		!resv.reservedForOther(b.ip, mac) {
		if b.state == bindActive && now.Before(b.expires) {
			return b.ip, true
		}
		b.state, b.expires = bindOffered, now.Add(hold)
		return b.ip, true
	}
	free := func(ip netip.Addr) bool { return !p.excluded[ip] && !resv.reservedForOther(ip, mac) }
	size := uint32(p.rng.Size())
	start := addrToUint(p.rng.Start)
	for i := uint32(0); i < size; i++ {
		off := (p.cursor + i) % size
		ip := uintToAddr(start + off)
		if t.byIP[ip] == nil && free(ip) {
			p.cursor = (off + 1) % size
			t.assign(ip, mac, bindOffered, now.Add(hold), "")
			return ip, true
		}
	}
	// Every address has a record: reclaim one nobody holds any more (expired, released,
	// a stale offer, a decline whose hold ran out). O(range), only when the pool is full.
	for i := uint32(0); i < size; i++ {
		ip := uintToAddr(start + i)
		if b := t.byIP[ip]; b != nil && !b.live(now) && free(ip) {
			t.assign(ip, mac, bindOffered, now.Add(hold), "")
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// assign gives ip to mac, detaching whatever either held before. Call with mu held.
func (t *leaseTable) assign(ip netip.Addr, mac node.MAC, st bindState, expires time.Time, hostname string) *binding {
	if old := t.byIP[ip]; old != nil && !old.mac.IsZero() && old.mac != mac && t.byMAC[old.mac] == old {
		delete(t.byMAC, old.mac)
	}
	if old := t.byMAC[mac]; old != nil && old.ip != ip && t.byIP[old.ip] == old {
		// One record per MAC, as in the store: its previous address becomes free.
		delete(t.byIP, old.ip)
	}
	b := &binding{ip: ip, mac: mac, state: st, expires: expires, hostname: hostname}
	t.byIP[ip] = b
	if !mac.IsZero() {
		t.byMAC[mac] = b
	}
	return b
}

// bindVerdict says why a REQUEST is refused.
type bindVerdict uint8

const (
	bindOK bindVerdict = iota
	bindWrongSubnet
	bindNotStatic      // the MAC has a static address and asked for another
	bindReservedOther  // the address is another node's static address
	bindHeldByOther    // another client holds (or was offered) it, or it was declined
	bindOutsideRange   // not in the dynamic range and not the client's
	bindNothingRequest // no address in the request at all
)

func (v bindVerdict) String() string {
	return [...]string{"ok", "address not on the client's subnet", "client has a different static address",
		"address is reserved for another node", "address is held by another client",
		"address is outside the range", "no address requested"}[v]
}

// snapshot is a copy of a binding taken before a change, to undo it if the commit fails.
type snapshot struct {
	ip      netip.Addr
	mac     node.MAC
	prevIP  *binding
	prevMAC *binding
}

// bind checks that ip may be leased to mac on pool p (RFC 2131 §4.3.2: a REQUEST for an
// address that is not the client's gets a NAK) and, if so, makes it active until
// now+leaseTime. The caller must persist the returned lease before ACKing and call undo
// if that fails.
func (t *leaseTable) bind(mac node.MAC, ip netip.Addr, p *subnetPool, static netip.Addr, resv *reservations,
	hostname string, now time.Time, leaseTime time.Duration) (store.Lease, snapshot, bindVerdict) {
	if !ip.IsValid() {
		return store.Lease{}, snapshot{}, bindNothingRequest
	}
	if !p.subnet.Contains(ip) {
		return store.Lease{}, snapshot{}, bindWrongSubnet
	}
	if static.IsValid() && ip != static {
		return store.Lease{}, snapshot{}, bindNotStatic
	}
	if !static.IsValid() && resv.reservedForOther(ip, mac) {
		return store.Lease{}, snapshot{}, bindReservedOther
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.byIP[ip]
	if !static.IsValid() {
		if cur != nil && cur.mac != mac && cur.live(now) {
			return store.Lease{}, snapshot{}, bindHeldByOther
		}
		if !p.rng.Contains(ip) || p.excluded[ip] {
			return store.Lease{}, snapshot{}, bindOutsideRange
		}
	}
	snap := snapshot{ip: ip, mac: mac, prevIP: cloneBinding(cur), prevMAC: cloneBinding(t.byMAC[mac])}
	b := t.assign(ip, mac, bindActive, now.Add(leaseTime), hostname)
	return b.lease(), snap, bindOK
}

func cloneBinding(b *binding) *binding {
	if b == nil {
		return nil
	}
	c := *b
	return &c
}

// undo restores the records a failed commit had changed.
func (t *leaseTable) undo(s snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.byIP[s.ip]; b != nil && b.mac == s.mac {
		delete(t.byIP, s.ip)
		if t.byMAC[s.mac] == b {
			delete(t.byMAC, s.mac)
		}
	}
	for _, prev := range []*binding{s.prevMAC, s.prevIP} {
		if prev == nil || t.byIP[prev.ip] != nil {
			continue
		}
		t.byIP[prev.ip] = prev
		if !prev.mac.IsZero() && t.byMAC[prev.mac] == nil {
			t.byMAC[prev.mac] = prev
		}
	}
}

// release ends mac's lease on ip (DHCPRELEASE). ok is false when ip is not mac's.
func (t *leaseTable) release(mac node.MAC, ip netip.Addr, now time.Time) (store.Lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.byIP[ip]
	if b == nil || b.mac != mac || b.state != bindActive {
		return store.Lease{}, false
	}
	// The record stays (released) so the same client is offered the same address again.
	b.state, b.expires = bindReleased, now
	return b.lease(), true
}

// decline takes ip out of the pool for hold (DHCPDECLINE: the client saw it in use).
func (t *leaseTable) decline(mac node.MAC, ip netip.Addr, now time.Time, hold time.Duration) (store.Lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.byIP[ip]
	if b == nil || b.mac != mac {
		return store.Lease{}, false
	}
	if t.byMAC[mac] == b {
		delete(t.byMAC, mac)
	}
	b.mac, b.state, b.expires, b.hostname = node.MAC{}, bindDeclined, now.Add(hold), ""
	return b.lease(), true
}

// forgetOffer drops mac's pending offer when it chose another server (a REQUEST whose
// server identifier is not ours).
func (t *leaseTable) forgetOffer(mac node.MAC, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.byMAC[mac]; b != nil && b.state == bindOffered {
		b.expires = now
	}
}

// holder returns the MAC holding ip now (active or offered), for tests and warnings.
func (t *leaseTable) holder(ip netip.Addr, now time.Time) (node.MAC, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.byIP[ip]; b != nil && b.live(now) && !b.mac.IsZero() {
		return b.mac, true
	}
	return node.MAC{}, false
}
