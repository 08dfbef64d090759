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
	// bindElsewhere is an address another server holds: a client chose that server's
	// offer of it, or the shared store refused our claim. Learned, never written: it
	// keeps the address out of our offers (replicas on one inventory, see takenElsewhere).
	bindElsewhere
)

// binding is one address's record in the in-memory index. It holds no pointers (the
// address as a number, the expiry in Unix nanoseconds, the hostname inline) and the maps
// hold bindings by value: the garbage collector has nothing in the table to scan. With
// pointers it scanned every lease on every cycle, and that mark work grew with the lease
// count until it showed in the ACK latency (p99 from 5 to 11 ms at 50,000 leases).
type binding struct {
	ip      uint32
	mac     node.MAC // zero for a declined address
	state   bindState
	hostLen uint8
	host    [maxHostname]byte
	expires int64 // Unix nanoseconds; 0 for none
}

// maxHostname is what a binding keeps of DHCP option 12: a DNS label is at most 63 bytes
// (RFC 1035), so longer names are not valid hostnames anyway.
const maxHostname = 63

func newBinding(ip netip.Addr, mac node.MAC, st bindState, expires time.Time, hostname string) binding {
	b := binding{ip: addrToUint(ip), mac: mac, state: st, expires: unixNanos(expires)}
	b.hostLen = uint8(copy(b.host[:], hostname))
	return b
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// live reports whether the binding still keeps the address from everyone else.
func (b *binding) live(now time.Time) bool {
	return (b.state == bindOffered || b.state == bindActive || b.state == bindDeclined || b.state == bindElsewhere) && now.UnixNano() < b.expires
}

func (b *binding) addr() netip.Addr { return uintToAddr(b.ip) }

func (b *binding) lease() store.Lease {
	l := store.Lease{IP: b.addr(), MAC: b.mac, Hostname: string(b.host[:b.hostLen])}
	if b.expires != 0 {
		l.Expires = time.Unix(0, b.expires).UTC()
	}
	switch b.state {
	case bindActive:
		l.State = store.LeaseActive
	case bindReleased, bindOffered, bindElsewhere:
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
// start. bbolt is the durable copy; lookups never touch it. byMAC names the address of
// the MAC's binding, which lives in byIP.
type leaseTable struct {
	mu    sync.Mutex
	byIP  map[uint32]binding
	byMAC map[node.MAC]uint32
	// sharedLeases is DHCPConfig.SharedLeases: the search for a new address starts at a
	// slot the MAC chooses, before the cursor, and an offer made here does not keep a
	// client from an address the shared store may have leased it through another replica.
	sharedLeases bool
}

func newLeaseTable(leases []store.Lease) *leaseTable {
	t := &leaseTable{byIP: make(map[uint32]binding, len(leases)), byMAC: make(map[node.MAC]uint32, len(leases))}
	for _, l := range leases {
		var st bindState
		switch l.State {
		case store.LeaseActive:
			st = bindActive
		case store.LeaseReleased:
			st = bindReleased
		case store.LeaseDeclined:
			st = bindDeclined
		default:
			continue
		}
		if !l.IP.Is4() {
			continue // DHCPv4 leases only
		}
		b := newBinding(l.IP, l.MAC, st, l.Expires, l.Hostname)
		t.byIP[b.ip] = b
		if !l.MAC.IsZero() {
			t.byMAC[l.MAC] = b.ip
		}
	}
	return t
}

// macBinding is mac's binding, if it has one.
func (t *leaseTable) macBinding(mac node.MAC) (binding, bool) {
	ip, ok := t.byMAC[mac]
	if !ok {
		return binding{}, false
	}
	b, ok := t.byIP[ip]
	if !ok || b.mac != mac {
		return binding{}, false
	}
	return b, true
}

// activeCount counts bindings that are leased now (for stats).
func (t *leaseTable) activeCount(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, at := 0, now.UnixNano()
	for _, b := range t.byIP {
		if b.state == bindActive && at < b.expires {
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
		if b, ok := t.macBinding(mac); ok && b.addr() == static && b.state == bindActive && b.live(now) {
			return static, true
		}
		t.assign(static, mac, bindOffered, now.Add(hold), "")
		return static, true
	}
	if b, ok := t.macBinding(mac); ok && p.rng.Contains(b.addr()) && !p.excluded[b.addr()] && b.state != bindDeclined &&
		!resv.reservedForOther(b.addr(), mac) {
		if b.state == bindActive && b.live(now) {
			return b.addr(), true
		}
		b.state, b.expires = bindOffered, now.Add(hold).UnixNano()
		t.byIP[b.ip] = b
		return b.addr(), true
	}
	free := func(ip netip.Addr) bool { return !p.excluded[ip] && !resv.reservedForOther(ip, mac) }
	size := uint32(p.rng.Size())
	start := addrToUint(p.rng.Start)
	if t.sharedLeases {
		// The MAC's slot in the aligned window of sharedLeaseWindow addresses that holds
		// the cursor: every replica's cursor is at the lowest addresses still free, so
		// they agree on the window, and a batch of new leases lands in a few of the shared
		// store's lease blocks (one write each) instead of a block per lease, as slots
		// spread over the whole range would. Within the window the blocks fill in order,
		// the MAC's slot in the first with room: a slot over the whole window put a batch
		// in up to all four blocks (0.26-0.29 writes per exchange against 0.10 without
		// slots), while replicas still agree wherever the blocks are not nearly full. The
		// cursor moves on only when the window is full (the scan below).
		cur := start + p.cursor
		lo := max(start, cur&^(sharedLeaseWindow-1))
		hi := min(start+size-1, cur|(sharedLeaseWindow-1))
		h := macSlot(mac)
		for blk := lo &^ (sharedLeaseBlock - 1); blk <= hi; blk += sharedLeaseBlock {
			blo, bhi := max(lo, blk), min(hi, blk+sharedLeaseBlock-1)
			n := bhi - blo + 1
			first, step := h%n, probeStep(h, n)
			for i := uint32(0); i < n; i++ {
				ip := blo + (first+i*step)%n
				if _, taken := t.byIP[ip]; !taken && free(uintToAddr(ip)) {
					t.assign(uintToAddr(ip), mac, bindOffered, now.Add(hold), "")
					return uintToAddr(ip), true
				}
			}
		}
	}
	for i := uint32(0); i < size; i++ {
		off := (p.cursor + i) % size
		if _, taken := t.byIP[start+off]; !taken && free(uintToAddr(start+off)) {
			p.cursor = (off + 1) % size
			t.assign(uintToAddr(start+off), mac, bindOffered, now.Add(hold), "")
			return uintToAddr(start + off), true
		}
	}
	// Every address has a record: reclaim one nobody holds any more (expired, released,
	// a stale offer, a decline whose hold ran out). O(range), only when the pool is full.
	for i := uint32(0); i < size; i++ {
		ip := uintToAddr(start + i)
		if b, ok := t.byIP[start+i]; ok && !b.live(now) && free(ip) {
			t.assign(ip, mac, bindOffered, now.Add(hold), "")
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// sharedLeaseWindow is the size of the aligned address window a MAC's slot is chosen
// in (a power of two): four of the Kubernetes store's lease blocks of 64 addresses
// (kubestore), filled one block after another. With a slot anywhere in the window and a
// search one address at a time, filling it that way made two replicas that saw
// colliding DISCOVERs in opposite orders place them differently (measured with 40
// machines in a 100-address range: 23 of 40 agreed, as in a 64-address window, against
// all 40 with slots over the whole window); the search's stride per MAC (probeStep)
// brought that back to 40 of 40 (91 of 96 with the range nearly full).
const sharedLeaseWindow = 256

// sharedLeaseBlock is the Kubernetes store's lease block (kubestore): the window's
// blocks fill one after another.
const sharedLeaseBlock = 64

// probeStep is the stride of a MAC's search of a block of n addresses from its slot:
// coprime with n, so the search visits every address, and chosen by the MAC, so two
// MACs whose slots are taken go on to different addresses. With a stride of one, the
// taken addresses cluster and the first free one after a cluster is every searcher's
// choice: as a block fills, two machines seen in opposite orders by two replicas then
// get swapped addresses (23 of 40 machines offered the same address in the test of
// that, against 30 or more wanted).
func probeStep(h, n uint32) uint32 {
	step := (h>>16)%n | 1
	for gcd(step, n) != 1 {
		step += 2
	}
	return step
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// macSlot is a MAC's FNV-1a hash: the same on every replica.
func macSlot(mac node.MAC) uint32 {
	h := uint32(2166136261)
	for _, b := range mac {
		h = (h ^ uint32(b)) * 16777619
	}
	return h
}

// assign gives ip to mac, detaching whatever either held before. Call with mu held.
func (t *leaseTable) assign(ip netip.Addr, mac node.MAC, st bindState, expires time.Time, hostname string) binding {
	key := addrToUint(ip)
	if old, ok := t.byIP[key]; ok && !old.mac.IsZero() && old.mac != mac {
		if owner, ok := t.byMAC[old.mac]; ok && owner == key {
			delete(t.byMAC, old.mac)
		}
	}
	if oldIP, ok := t.byMAC[mac]; ok && oldIP != key {
		// One record per MAC, as in the store: its previous address becomes free.
		if old, ok := t.byIP[oldIP]; ok && old.mac == mac {
			delete(t.byIP, oldIP)
		}
	}
	b := newBinding(ip, mac, st, expires, hostname)
	t.byIP[key] = b
	if !mac.IsZero() {
		t.byMAC[mac] = key
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

// snapshot is a copy of the bindings a change replaces, to undo it if the commit fails.
type snapshot struct {
	ip              uint32
	mac             node.MAC
	prevIP, prevMAC binding
	hadIP, hadMAC   bool
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
	if !ip.Is4() || !p.subnet.Contains(ip) {
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
	cur, hadIP := t.byIP[addrToUint(ip)]
	if !static.IsValid() {
		// With a shared store, neither our own offer of the address to another client
		// nor what we learned of other servers' leases (bindElsewhere: a REQUEST heard,
		// a claim the store refused, both possibly for a client that lost the address
		// since) decides: another replica may have leased it to this client (an
		// INIT-REBOOT after that replica died), and the store, which refuses a second
		// active lease of an address, is the judge. Deciding here NAKed the lease's holder.
		storeJudges := t.sharedLeases && (cur.state == bindOffered || cur.state == bindElsewhere)
		if hadIP && cur.mac != mac && cur.live(now) && !storeJudges {
			return store.Lease{}, snapshot{}, bindHeldByOther
		}
		if !p.rng.Contains(ip) || p.excluded[ip] {
			return store.Lease{}, snapshot{}, bindOutsideRange
		}
	}
	snap := snapshot{ip: addrToUint(ip), mac: mac, prevIP: cur, hadIP: hadIP}
	snap.prevMAC, snap.hadMAC = t.macBinding(mac)
	b := t.assign(ip, mac, bindActive, now.Add(leaseTime), hostname)
	return b.lease(), snap, bindOK
}

// undo restores the records a failed commit had changed.
func (t *leaseTable) undo(s snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.byIP[s.ip]; ok && b.mac == s.mac {
		delete(t.byIP, s.ip)
		if owner, ok := t.byMAC[s.mac]; ok && owner == s.ip {
			delete(t.byMAC, s.mac)
		}
	}
	for _, prev := range []struct {
		b   binding
		had bool
	}{{s.prevMAC, s.hadMAC}, {s.prevIP, s.hadIP}} {
		if !prev.had {
			continue
		}
		if _, taken := t.byIP[prev.b.ip]; taken {
			continue
		}
		t.byIP[prev.b.ip] = prev.b
		if _, owned := t.byMAC[prev.b.mac]; !prev.b.mac.IsZero() && !owned {
			t.byMAC[prev.b.mac] = prev.b.ip
		}
	}
}

// release ends mac's lease on ip (DHCPRELEASE). ok is false when ip is not mac's.
func (t *leaseTable) release(mac node.MAC, ip netip.Addr, now time.Time) (store.Lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ip.Is4() {
		return store.Lease{}, false
	}
	b, ok := t.byIP[addrToUint(ip)]
	if !ok || b.mac != mac || b.state != bindActive {
		return store.Lease{}, false
	}
	// The record stays (released) so the same client is offered the same address again.
	b.state, b.expires = bindReleased, now.UnixNano()
	t.byIP[b.ip] = b
	return b.lease(), true
}

// decline takes ip out of the pool for hold (DHCPDECLINE: the client saw it in use).
func (t *leaseTable) decline(mac node.MAC, ip netip.Addr, now time.Time, hold time.Duration) (store.Lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ip.Is4() {
		return store.Lease{}, false
	}
	b, ok := t.byIP[addrToUint(ip)]
	if !ok || b.mac != mac {
		return store.Lease{}, false
	}
	if owner, ok := t.byMAC[mac]; ok && owner == b.ip {
		delete(t.byMAC, mac)
	}
	b.mac, b.state, b.expires, b.hostLen = node.MAC{}, bindDeclined, now.Add(hold).UnixNano(), 0
	t.byIP[b.ip] = b
	return b.lease(), true
}

// forgetOffer drops mac's pending offer when it chose another server (a REQUEST whose
// server identifier is not ours).
func (t *leaseTable) forgetOffer(mac node.MAC, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.macBinding(mac); ok && b.state == bindOffered {
		b.expires = now.UnixNano()
		t.byIP[b.ip] = b
	}
}

// takenElsewhere notes that mac is taking ip from another server (its REQUEST names
// that server's offer): our own offer to mac is dropped, and ip is kept out of our offers
// to anyone else until until. Without it, replicas serving one segment from one
// inventory go on offering an address another replica has just leased, and the client
// that takes that offer is refused by the store. A live binding of ip to another client
// here stays: it is ours to commit or lose.
func (t *leaseTable) takenElsewhere(mac node.MAC, ip netip.Addr, now, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.byIP[addrToUint(ip)]; ok && cur.mac != mac && cur.live(now) && cur.state != bindElsewhere {
		if b, ok := t.macBinding(mac); ok && b.state == bindOffered {
			b.expires = now.UnixNano()
			t.byIP[b.ip] = b
		}
		return
	}
	t.assign(ip, mac, bindElsewhere, until, "")
}

// refused notes that the store refused mac's claim on ip, after the claim was undone:
// another server holds ip for a client we do not know, until at most until. It reports
// false, and notes nothing, when ip is known here as mac's own lease (ours, or taken
// through another replica): then the refusal was a race between replicas writing that
// same lease (a broadcast renewal reaches them all), which a retransmission settles.
func (t *leaseTable) refused(ip netip.Addr, mac node.MAC, now, until time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.byIP[addrToUint(ip)]; ok && b.mac == mac && (b.state == bindActive || b.state == bindElsewhere) && b.live(now) {
		return false
	}
	t.assign(ip, node.MAC{}, bindElsewhere, until, "")
	return true
}

// holder returns the MAC holding ip now (active or offered), for tests and warnings.
func (t *leaseTable) holder(ip netip.Addr, now time.Time) (node.MAC, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ip.Is4() {
		return node.MAC{}, false
	}
	if b, ok := t.byIP[addrToUint(ip)]; ok && b.live(now) && !b.mac.IsZero() {
		return b.mac, true
	}
	return node.MAC{}, false
}
